//! Benchmark drivers. Each benchmark lives in its own directory under
//! `bench/` with a committed report and the one command that reproduces it.
