//! The benchmarks' shared code (`make bench`, `make cost`, `make bench-scale`), tested on
//! small inputs by `make test`.

pub mod cost;
pub mod harness;
