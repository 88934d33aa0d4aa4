//! `pg::sql::for_each_effect` must not allocate unless it reports a `Set` or `Reset`: it runs on
//! every query. A separate test binary, so its counting allocator affects nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use muxql::pg::sql::{for_each_effect, Effect};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting has no other effect.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn queries_without_set_or_reset_do_not_allocate() {
    let queries: [&[u8]; 9] = [
        b"SELECT abalance FROM pgbench_accounts WHERE aid = 4242;",
        b"UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 77;",
        b"BEGIN; INSERT INTO t VALUES ($1, 'it''s', E'\\'', $$x$$); COMMIT",
        b"/* c /* nested */ */ SELECT \"a\"\"b\" -- trailing\n",
        b"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SET LOCAL work_mem = '1MB'",
        b"LISTEN c; PREPARE p AS SELECT 1; DISCARD ALL; RESET ALL",
        b"SELECT pg_advisory_lock(1); CREATE TEMP TABLE t (a int)",
        b"DECLARE c CURSOR WITH HOLD FOR SELECT 1 INTO TEMP t",
        b"SELECT 'unterminated",
    ];
    for sql in queries {
        let mut seen = 0;
        let count = allocations_during(|| for_each_effect(sql, |_: Effect| seen += 1));
        assert_eq!(count, 0, "{}", String::from_utf8_lossy(sql));
    }
}

#[test]
fn set_allocates_its_strings_so_the_count_is_live() {
    let count = allocations_during(|| for_each_effect(b"SET x = 1", drop));
    assert!(count >= 2, "{count}");
}
