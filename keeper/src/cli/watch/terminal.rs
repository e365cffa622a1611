//! The terminal of `pg_autoctl watch`, with plain ANSI escape sequences and
//! termios: the alternate screen without cursor while watching, keys read
//! one at a time without echo, and everything restored when the guard is
//! dropped (also on errors and signals, since the watch loop returns
//! normally for them).

use std::io::Write;

/// Whether file descriptor `fd` is a terminal.
pub fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// Columns and rows of the terminal on stdout (80x24 when unknown).
pub fn size() -> (usize, usize) {
    // SAFETY: all-zero is a valid winsize; TIOCGWINSZ fills it.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: ioctl with a pointer to a winsize we own.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 && ws.ws_row > 0 {
        (usize::from(ws.ws_col), usize::from(ws.ws_row))
    } else {
        (80, 24)
    }
}

/// The terminal while `watch` owns it.
pub struct Screen {
    saved: Option<libc::termios>,
}

impl Screen {
    /// Switch to the alternate screen, hide the cursor, and read keys
    /// without echo when stdin is a terminal.
    pub fn enter() -> Screen {
        let mut saved = None;
        if is_tty(libc::STDIN_FILENO) {
            // SAFETY: all-zero is a valid termios; tcgetattr fills it.
            let mut t: libc::termios = unsafe { std::mem::zeroed() };
            // SAFETY: tcgetattr/tcsetattr on stdin with termios we own.
            unsafe {
                if libc::tcgetattr(libc::STDIN_FILENO, &mut t) == 0 {
                    let old = t;
                    t.c_lflag &= !(libc::ICANON | libc::ECHO);
                    t.c_cc[libc::VMIN] = 1;
                    t.c_cc[libc::VTIME] = 0;
                    if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) == 0 {
                        saved = Some(old);
                    }
                }
            }
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(b"\x1b[?1049h\x1b[?25l\x1b[2J");
        let _ = out.flush();
        Screen { saved }
    }

    /// Draw `lines` from the top left, clearing what the previous frame
    /// left behind.
    pub fn draw(&self, lines: &[String]) {
        let mut frame = String::from("\x1b[H");
        for (i, l) in lines.iter().enumerate() {
            if i > 0 {
                frame.push_str("\r\n");
            }
            frame.push_str(l);
            frame.push_str("\x1b[K");
        }
        frame.push_str("\x1b[J");
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(frame.as_bytes());
        let _ = out.flush();
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(b"\x1b[?25h\x1b[?1049l");
        let _ = out.flush();
        if let Some(t) = self.saved {
            // SAFETY: restore the termios read in `enter`.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) };
        }
    }
}

/// Keys typed on stdin, one byte each, read by a thread of their own (it
/// ends with the process).
pub fn keys() -> tokio::sync::mpsc::UnboundedReceiver<u8> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    if is_tty(libc::STDIN_FILENO) {
        let spawned = std::thread::Builder::new()
            .name("watch-keys".into())
            .spawn(move || {
                let mut buf = [0u8; 16];
                loop {
                    match std::io::Read::read(&mut std::io::stdin(), &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if buf[..n].iter().any(|b| tx.send(*b).is_err()) {
                                break;
                            }
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::debug!("cannot read keys: {e}");
        }
    }
    rx
}
