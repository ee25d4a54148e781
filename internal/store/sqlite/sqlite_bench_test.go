package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/taisen-dev/taisen/internal/store/storetest"
)

func BenchmarkCreateAccount(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		storetest.BenchCreateAccount(b, openTest(b, filepath.Join(b.TempDir(), "taisen.db"), nil), false)
	})
	b.Run("parallel", func(b *testing.B) {
		storetest.BenchCreateAccount(b, openTest(b, filepath.Join(b.TempDir(), "taisen.db"), nil), true)
	})
}

func BenchmarkCredentialLookup(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		storetest.BenchCredentialLookup(b, openTest(b, filepath.Join(b.TempDir(), "taisen.db"), nil), false)
	})
	b.Run("parallel", func(b *testing.B) {
		storetest.BenchCredentialLookup(b, openTest(b, filepath.Join(b.TempDir(), "taisen.db"), nil), true)
	})
}

func BenchmarkLoginLookup(b *testing.B) {
	b.Run("credential+account", func(b *testing.B) {
		storetest.BenchLoginLookup(b, openTest(b, filepath.Join(b.TempDir(), "taisen.db"), nil), false)
	})
	b.Run("credential_account", func(b *testing.B) {
		storetest.BenchLoginLookup(b, openTest(b, filepath.Join(b.TempDir(), "taisen.db"), nil), true)
	})
}

func BenchmarkPutInbox(b *testing.B) {
	b.Run("100 users", func(b *testing.B) {
		storetest.BenchPutInbox(b, openTest(b, filepath.Join(b.TempDir(), "taisen.db"), nil), true)
	})
	b.Run("1 user", func(b *testing.B) {
		storetest.BenchPutInbox(b, openTest(b, filepath.Join(b.TempDir(), "taisen.db"), nil), false)
	})
}

func BenchmarkInbox(b *testing.B) {
	storetest.BenchInbox(b, openTest(b, filepath.Join(b.TempDir(), "taisen.db"), nil))
}

func BenchmarkLoginLookupFresh(b *testing.B) {
	storetest.BenchLoginLookupFresh(b, openTest(b, filepath.Join(b.TempDir(), "taisen.db"), nil))
}

func BenchmarkUsersPending(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch %d", n), func(b *testing.B) {
			storetest.BenchUsersPending(b, openTest(b, filepath.Join(b.TempDir(), "taisen.db"), nil), n)
		})
	}
}
