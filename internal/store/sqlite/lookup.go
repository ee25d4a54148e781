package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/taisen-dev/taisen/internal/store"
)

// errClosed answers a lookup asked of a closed Store.
var errClosed = errors.New("sqlite: store closed")

// maxLookupBatch bounds the lookups a worker answers in one read
// transaction.
const maxLookupBatch = 32

// lookupWorkers run the login lookup on long-lived goroutines, each with
// a connection of its own. A query through the pure-Go SQLite runs deep,
// large stack frames: on a goroutine whose stack starts small, as the
// gateway's per-request ones do, the runtime grows and copies the stack
// several times, which costs as much as the query itself. A worker's
// stack grows once. Handing a lookup to a worker and back costs two
// goroutine switches; in a login storm a worker takes every lookup
// waiting and answers them in one read transaction, so the transaction's
// locking is paid once per batch.
type lookupWorkers struct {
	reqs     chan *lookup
	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	free     sync.Pool // *lookup
	runners  []lookupRunner
}

// lookup is one request to the workers and its answer.
type lookup struct {
	ctx     context.Context
	kind    store.CredentialKind
	subject string
	cred    store.Credential
	account store.Account
	err     error
	// ready receives once the answer is in.
	ready chan struct{}
}

// A lookupRunner answers batches of lookups for one worker, setting each
// lookup's answer.
type lookupRunner interface {
	run(batch []*lookup)
	close() error
}

// startLookupWorkers starts one worker per runner.
func startLookupWorkers(runners []lookupRunner) *lookupWorkers {
	w := &lookupWorkers{reqs: make(chan *lookup), done: make(chan struct{}), runners: runners}
	w.free.New = func() any { return &lookup{ready: make(chan struct{}, 1)} }
	w.wg.Add(len(runners))
	for _, r := range runners {
		go func() {
			defer w.wg.Done()
			batch := make([]*lookup, 0, maxLookupBatch)
			for {
				select {
				case <-w.done:
					return
				case l := <-w.reqs:
					batch = append(batch[:0], l)
				}
			fill:
				for len(batch) < maxLookupBatch {
					select {
					case l := <-w.reqs:
						batch = append(batch, l)
					default:
						break fill
					}
				}
				r.run(batch)
				for _, l := range batch {
					l.ready <- struct{}{}
				}
				clear(batch)
			}
		}()
	}
	return w
}

// do runs one lookup on a worker and waits for its answer. Waiting for a
// free worker ends with ctx; the query runs under query, which should not
// be cancellable (see pointRead), and is waited for to the end.
func (w *lookupWorkers) do(ctx, query context.Context, kind store.CredentialKind, subject string) (store.Credential, store.Account, error) {
	l := w.free.Get().(*lookup)
	l.ctx, l.kind, l.subject = query, kind, subject
	select {
	case w.reqs <- l:
	case <-ctx.Done():
		*l = lookup{ready: l.ready}
		w.free.Put(l)
		return store.Credential{}, store.Account{}, fmt.Errorf("sqlite: get credential and account: %w", ctx.Err())
	case <-w.done:
		*l = lookup{ready: l.ready}
		w.free.Put(l)
		return store.Credential{}, store.Account{}, fmt.Errorf("sqlite: get credential and account: %w", errClosed)
	}
	<-l.ready
	cred, account, err := l.cred, l.account, l.err
	*l = lookup{ready: l.ready}
	w.free.Put(l)
	return cred, account, err
}

// stop ends the workers once the lookups they hold are answered and
// closes their runners.
func (w *lookupWorkers) stop() error {
	var errs []error
	w.stopOnce.Do(func() {
		close(w.done)
		w.wg.Wait()
		for _, r := range w.runners {
			errs = append(errs, r.close())
		}
	})
	return errors.Join(errs...)
}

// connLookup answers lookups on one connection of its own through the
// driver's interfaces: database/sql's pool, per-row locking and
// reflective Scan cost about a third of a lookup otherwise.
type connLookup struct {
	db   *sql.DB
	conn *sql.Conn   // nil after a failure, until the next batch
	stmt driver.Stmt // credentialAccountQuery, prepared on conn
	args []driver.NamedValue
	row  []driver.Value
}

// newConnLookup takes a connection of db for a worker and prepares the
// lookup on it.
func newConnLookup(ctx context.Context, db *sql.DB) (*connLookup, error) {
	r := &connLookup{db: db, args: make([]driver.NamedValue, 2), row: make([]driver.Value, 9)}
	if err := r.connect(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// connect takes a connection and prepares the lookup on it.
func (r *connLookup) connect(ctx context.Context) error {
	c, err := r.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: lookup connection: %w", err)
	}
	err = c.Raw(func(dc any) error {
		p, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("driver connection %T cannot prepare", dc)
		}
		if _, ok := dc.(driver.ExecerContext); !ok {
			return fmt.Errorf("driver connection %T cannot execute", dc)
		}
		s, err := p.PrepareContext(ctx, credentialAccountQuery)
		if err != nil {
			return err
		}
		if _, ok := s.(driver.StmtQueryContext); !ok {
			return errors.Join(fmt.Errorf("driver statement %T cannot query", s), s.Close())
		}
		r.stmt = s
		return nil
	})
	if err != nil {
		return errors.Join(fmt.Errorf("sqlite: prepare lookup: %w", err), c.Close())
	}
	r.conn = c
	return nil
}

func (r *connLookup) run(batch []*lookup) {
	ctx := batch[0].ctx
	if r.conn == nil {
		if err := r.connect(ctx); err != nil {
			for _, l := range batch {
				l.err = fmt.Errorf("sqlite: get credential and account: %w", err)
			}
			return
		}
	}
	answered := 0
	err := r.conn.Raw(func(dc any) error {
		ex := dc.(driver.ExecerContext) // checked by connect
		// Without the transaction each lookup is one of its own.
		began := false
		if len(batch) > 1 {
			_, err := ex.ExecContext(ctx, "BEGIN", nil)
			began = err == nil
		}
		for _, l := range batch {
			l.cred, l.account, l.err = r.one(l.ctx, l.kind, l.subject)
			answered++
		}
		if began {
			if _, err := ex.ExecContext(ctx, "COMMIT", nil); err != nil {
				// The answers were read; the connection must not stay in
				// the transaction.
				if _, rerr := ex.ExecContext(ctx, "ROLLBACK", nil); rerr != nil {
					return errors.Join(err, rerr)
				}
			}
		}
		return nil
	})
	if err != nil {
		for _, l := range batch[answered:] {
			l.err = fmt.Errorf("sqlite: get credential and account: %w", err)
		}
		// The connection is in an unknown state: the next batch takes a
		// new one.
		_ = r.close()
		r.conn, r.stmt = nil, nil
	}
}

// one runs one lookup; it is called inside conn.Raw.
func (r *connLookup) one(ctx context.Context, kind store.CredentialKind, subject string) (store.Credential, store.Account, error) {
	r.args[0] = driver.NamedValue{Ordinal: 1, Value: string(kind)}
	r.args[1] = driver.NamedValue{Ordinal: 2, Value: subject}
	rows, err := r.stmt.(driver.StmtQueryContext).QueryContext(ctx, r.args)
	if err != nil {
		return store.Credential{}, store.Account{}, fmt.Errorf("sqlite: get credential and account: %w", mapErr(err))
	}
	err = rows.Next(r.row)
	if errors.Is(err, io.EOF) {
		err = store.ErrNotFound
	}
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return store.Credential{}, store.Account{}, fmt.Errorf("sqlite: get credential and account: %w", mapErr(err))
	}
	cred, a, err := credentialAccountRow(kind, subject, r.row)
	clear(r.row)
	if err != nil {
		return store.Credential{}, store.Account{}, fmt.Errorf("sqlite: get credential and account: %w", err)
	}
	return cred, a, nil
}

// credentialAccountRow reads a row of credentialAccountQuery as the driver
// returns it: TEXT as string, INTEGER as int64, NULL as nil.
func credentialAccountRow(kind store.CredentialKind, subject string, row []driver.Value) (store.Credential, store.Account, error) {
	var (
		a                store.Account
		c                = store.Credential{Kind: kind, Subject: subject}
		created, updated string
		credCreated      string
		errs             []error
		text             = func(i int, dst *string) {
			s, ok := row[i].(string)
			if !ok {
				errs = append(errs, fmt.Errorf("column %d is %T, want text", i, row[i]))
			}
			*dst = s
		}
	)
	text(0, &a.ID)
	text(1, &a.Username)
	text(2, &a.DisplayName)
	text(3, &created)
	text(4, &updated)
	text(7, &c.Secret)
	text(8, &credCreated)
	epoch, ok := row[6].(int64)
	if !ok {
		errs = append(errs, fmt.Errorf("column 6 is %T, want integer", row[6]))
	}
	a.SessionEpoch = epoch
	if err := errors.Join(errs...); err != nil {
		return store.Credential{}, store.Account{}, err
	}
	var errCreated, errUpdated, errDisabled, errCred error
	a.CreatedAt, errCreated = parseTime(created)
	a.UpdatedAt, errUpdated = parseTime(updated)
	if row[5] != nil {
		var disabled string
		text(5, &disabled)
		a.DisabledAt, errDisabled = parseTime(disabled)
	}
	c.CreatedAt, errCred = parseTime(credCreated)
	if err := errors.Join(append(errs, errCreated, errUpdated, errDisabled, errCred)...); err != nil {
		return store.Credential{}, store.Account{}, err
	}
	c.AccountID = a.ID
	return c, a, nil
}

func (r *connLookup) close() error {
	if r.conn == nil {
		return nil
	}
	var serr error
	if r.stmt != nil {
		serr = r.conn.Raw(func(any) error { return r.stmt.Close() })
	}
	return errors.Join(serr, r.conn.Close())
}
