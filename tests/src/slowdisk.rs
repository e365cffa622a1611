//! A disk whose flushes are slow, for one service: a tiny preload library
//! (compiled here with the system's C compiler) that makes every
//! `fdatasync` (how Postgres flushes its WAL on Linux) sleep for as many
//! milliseconds as a control file says. The file is read on each call, so
//! a test turns the latency on and off while the service runs; 0 or no file
//! is a healthy disk.
//!
//! Without device-mapper (`dm-delay`) on the test machine, this is how a
//! test reproduces a busy disk's fsync latency deterministically.

use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCE: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long delay_ms(void) {
    const char *ctl = getenv("PGAF_SLOW_FSYNC_FILE");
    if (ctl == NULL) return 0;
    int fd = open(ctl, O_RDONLY);
    if (fd < 0) return 0;
    char buf[32] = {0};
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    return n > 0 ? atol(buf) : 0;
}

int fdatasync(int fd) {
    static int (*real)(int) = NULL;
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    long ms = delay_ms();
    if (ms > 0) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    return real(fd);
}
"#;

/// The preload library and its control file, in a test's directory.
pub struct SlowDisk {
    pub library: PathBuf,
    pub control: PathBuf,
}

impl SlowDisk {
    /// Compile the library into `dir` (readable by the `postgres` user).
    pub fn build(dir: &Path) -> SlowDisk {
        let src = dir.join("slowdisk.c");
        let library = dir.join("slowdisk.so");
        let control = dir.join("slowdisk.ms");
        std::fs::write(&src, SOURCE).expect("write slowdisk.c");
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&library)
            .arg(&src)
            .arg("-ldl")
            .output()
            .expect("run cc (setup.sh installs a C compiler)");
        assert!(
            out.status.success(),
            "cc slowdisk.c: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let disk = SlowDisk { library, control };
        disk.set_ms(0);
        crate::autoctl::give_to_postgres(&disk.library);
        crate::autoctl::give_to_postgres(&disk.control);
        disk
    }

    /// The environment of a process whose flushes this disk slows.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), self.library.display().to_string()),
            (
                "PGAF_SLOW_FSYNC_FILE".into(),
                self.control.display().to_string(),
            ),
        ]
    }

    /// Every flush from now on takes `ms` milliseconds more.
    pub fn set_ms(&self, ms: u64) {
        std::fs::write(&self.control, ms.to_string()).expect("write the slow disk's control file");
    }
}
