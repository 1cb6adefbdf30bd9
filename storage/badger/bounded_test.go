package badger

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/caddy-dcr/caddy-dcr/storage/storetest"
)

// versions counts every key version Badger still holds, expired and
// deleted ones included: what takes space, not what reads return.
func versions(t *testing.T, s *Store) (n int) {
	t.Helper()
	err := s.db.View(func(txn *bdb.Txn) error {
		opts := bdb.DefaultIteratorOptions
		opts.AllVersions, opts.PrefetchValues = true, false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// dirSize is the size of the files in dir, and of its tables (.sst)
// alone: the value log and memtable files are preallocated.
func dirSize(t *testing.T, dir string) (tables, total int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		if strings.HasSuffix(path, ".sst") {
			tables += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tables, total
}

// Thousands of register, consent, token, delete cycles and expired tokens
// leave nothing behind: the key versions Badger holds and the size of its
// tables come back down once it compacted, as the store's maintenance
// does while it runs (what the memtable holds waits for its flush) and
// as closing it does.
func TestChurnLeavesNothingBehind(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dcr")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	reopen := func() {
		t.Helper()
		must(t, s.Close())
		if s, err = Open(dir, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	type measure struct {
		keys          int
		tables, total int64
	}
	measured := func(when string) measure {
		t.Helper()
		m := measure{keys: versions(t, s)}
		m.tables, m.total = dirSize(t, dir)
		t.Logf("%-28s %6d key versions, %9d table bytes, %9d bytes in all", when, m.keys, m.tables, m.total)
		return m
	}
	storetest.Churn(t.Context(), t, s, 10) // the keeper, and a first round
	reopen()
	base := measured("before:")

	const cycles = 4000
	storetest.Churn(t.Context(), t, s, cycles)
	// Each cycle writes some 13 keys, twice or more; how much of it is
	// still there now depends on how far Badger's own compactions got.
	peak := measured("after the cycles:")

	must(t, s.compact())
	running := measured("compacted while running:")
	// The tables are rewritten without what is dead; the memtable (4 MiB,
	// the last couple of hundred cycles) keeps its versions until it is
	// flushed.
	if running.keys > cycles*13/4 || running.tables > base.tables+64<<10 {
		t.Errorf("compaction kept %+v (after the cycles: %+v)", running, peak)
	}

	reopen()
	end := measured("after a restart:")
	if end.keys > base.keys || end.tables > base.tables+base.tables/2+4<<10 || end.total > base.total+base.total/10 {
		t.Errorf("%+v left, %+v before the cycles", end, base)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
