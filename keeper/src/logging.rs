//! Log lines on stderr as upstream writes them: `HH:MM:SS <pid> LEVEL message`; results go to stdout.

use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

struct UpstreamFormat;

impl<S, N> FormatEvent<S, N> for UpstreamFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = {
            let mut t: libc::time_t = 0;
            let mut tm: libc::tm = unsafe_zeroed_tm();
            // SAFETY: time and localtime_r write into the locals we pass.
            unsafe {
                libc::time(&mut t);
                libc::localtime_r(&t, &mut tm);
            }
            format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
        };
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARN ",
            Level::INFO => "INFO ",
            Level::DEBUG => "DEBUG",
            Level::TRACE => "TRACE",
        };
        write!(writer, "{now} {} {level} ", std::process::id())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        if let Some(scope) = ctx.event_scope() {
            let mut first = true;
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<tracing_subscriber::fmt::FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(writer, "{}{}", if first { " [" } else { ", " }, fields)?;
                        first = false;
                    }
                }
            }
            if !first {
                write!(writer, "]")?;
            }
        }
        writeln!(writer)
    }
}

fn unsafe_zeroed_tm() -> libc::tm {
    // SAFETY: libc::tm is a plain C struct for which all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// Install the logger: `verbosity` 0 = INFO, 1 = DEBUG, ≥2 = TRACE, −1 =
/// ERROR only. `RUST_LOG` wins when set.
pub fn init(verbosity: i8) {
    let default = match verbosity {
        i8::MIN..=-1 => "error",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .event_format(UpstreamFormat)
        .try_init();
}
