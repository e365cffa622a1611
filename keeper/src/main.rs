//! `pg_autoctl`: see [`keeper::cli`].

fn main() {
    std::process::exit(keeper::cli::main());
}
