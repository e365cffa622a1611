//! Non-blocking TCP connections for the health checks, and `poll(2)` over a
//! set of them. The protocol lives in `pgaf-healthcheck`; this is only I/O.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;

/// A connection being established or established.
pub struct Conn {
    stream: TcpStream,
    pub connected: bool,
    pending: Vec<u8>,
}

impl Conn {
    /// Start connecting to host:port without blocking (the name is resolved
    /// by the system resolver).
    pub fn start(host: &str, port: i32) -> io::Result<Conn> {
        let port = u16::try_from(port).map_err(|_| io::Error::other("port out of range"))?;
        let addr = (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other("host name resolves to no address"))?;
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        socket.set_nodelay(true)?;
        let connected = match socket.connect(&SockAddr::from(addr)) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => return Err(e),
        };
        Ok(Conn {
            stream: socket.into(),
            connected,
            pending: Vec::new(),
        })
    }

    /// The events to wait for.
    pub fn interest(&self) -> i16 {
        if !self.connected || !self.pending.is_empty() {
            libc::POLLOUT
        } else {
            libc::POLLIN
        }
    }

    pub fn fd(&self) -> i32 {
        self.stream.as_raw_fd()
    }

    /// After POLLOUT on a connecting socket: did the connection succeed?
    pub fn finish_connect(&mut self) -> io::Result<()> {
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        self.stream.peer_addr()?;
        self.connected = true;
        Ok(())
    }

    /// Queue bytes and write what the socket accepts.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(bytes);
        while !self.pending.is_empty() {
            match self.stream.write(&self.pending) {
                Ok(0) => return Err(io::Error::other("connection closed while writing")),
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Read what is available: `Ok(None)` when nothing is, `Ok(Some(empty))`
    /// at end of file.
    pub fn read(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 8192];
        match self.stream.read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Wait up to `timeout_ms` for events on `fds` (fd, interest); returns the
/// events that occurred, in the same order. Interrupted waits return no
/// events.
pub fn poll(fds: &[(i32, i16)], timeout_ms: i32) -> Vec<i16> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    // SAFETY: `pollfds` is a valid array of `len` entries for the call.
    let rc = unsafe {
        libc::poll(
            pollfds.as_mut_ptr(),
            pollfds.len() as libc::nfds_t,
            timeout_ms,
        )
    };
    if rc <= 0 {
        return vec![0; fds.len()];
    }
    pollfds.iter().map(|p| p.revents).collect()
}
