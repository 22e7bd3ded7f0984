//! Compile errors of the macros: each file in `tests/ui/` is a mistake a user can make, and
//! its `.stderr` is what the compiler says (the message must point at the mistake and say what
//! to write instead). Regenerate after a deliberate change with `TRYBUILD=overwrite`.

#[test]
fn macro_mistakes_are_reported_at_the_mistake() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/tree_*.rs");
    cases.compile_fail("tests/ui/worker_*.rs");
    // `#[derive(Job)]`'s mistakes need the jobs module.
    if cfg!(feature = "jobs") {
        cases.compile_fail("tests/ui/job_*.rs");
    }
}
