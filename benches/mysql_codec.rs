//! MySQL codec benchmark (see scripts/bench).
fn main() {}
