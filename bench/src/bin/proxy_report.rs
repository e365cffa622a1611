//! `proxy-report RAW_TSV [MACHINE_TXT]`: the Markdown report of
//! `bench/proxy/run.sh` (see `pgaf_bench::proxy_report`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(raw) = args.first() else {
        eprintln!("usage: proxy-report RAW_TSV [MACHINE_TXT]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(raw) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("proxy-report: failed to read {raw}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let machine = match args.get(1) {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("proxy-report: failed to read {p}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => String::new(),
    };
    match pgaf_bench::proxy_report::parse(&text) {
        Ok(runs) => {
            print!("{}", pgaf_bench::proxy_report::render(&runs, &machine));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("proxy-report: {raw}: {e}");
            ExitCode::FAILURE
        }
    }
}
