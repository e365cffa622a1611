//! The `pg_autoproxy` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    proxy::run()
}
