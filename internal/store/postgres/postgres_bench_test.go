package postgres

import (
	"testing"

	"github.com/taisen-dev/taisen/internal/store/storetest"
)

func BenchmarkCreateAccount(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		storetest.BenchCreateAccount(b, openTest(b, newSchema(b, "taisen_bench_"), nil), false)
	})
	b.Run("parallel", func(b *testing.B) {
		storetest.BenchCreateAccount(b, openTest(b, newSchema(b, "taisen_bench_"), nil), true)
	})
}

func BenchmarkCredentialLookup(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		storetest.BenchCredentialLookup(b, openTest(b, newSchema(b, "taisen_bench_"), nil), false)
	})
	b.Run("parallel", func(b *testing.B) {
		storetest.BenchCredentialLookup(b, openTest(b, newSchema(b, "taisen_bench_"), nil), true)
	})
}

func BenchmarkPutInbox(b *testing.B) {
	b.Run("100 users", func(b *testing.B) {
		storetest.BenchPutInbox(b, openTest(b, newSchema(b, "taisen_bench_"), nil), true)
	})
	b.Run("1 user", func(b *testing.B) {
		storetest.BenchPutInbox(b, openTest(b, newSchema(b, "taisen_bench_"), nil), false)
	})
}

func BenchmarkInbox(b *testing.B) {
	storetest.BenchInbox(b, openTest(b, newSchema(b, "taisen_bench_"), nil))
}
