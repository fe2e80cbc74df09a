//! Attach, on the shim's side: the container's stdio is the shim's, so the shim is where an
//! attach connects. It listens on a unix socket in the container's directory; the runtime's
//! streaming server connects there for each attach session, and the shim copies the
//! container's output to every attached client (besides the log) and a client's input to the
//! container's stdin (or terminal). Single-threaded like the rest of the shim: sockets are
//! non-blocking, and a client that cannot keep up is dropped rather than stall the container.
//!
//! Wire format, both ways: `[kind u8][length u32 BE][payload]`. The client's first byte says
//! whether it takes stdin (`1`) or not (`0`). Client → shim: STDIN data, STDIN_CLOSE, RESIZE
//! (`u16 cols`, `u16 rows`, BE). Shim → client: STDOUT, STDERR data; EXIT (`i32` BE code) when
//! the container has exited, after which the shim closes the connection.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

pub const STDIN: u8 = 0;
pub const STDIN_CLOSE: u8 = 1;
pub const RESIZE: u8 = 2;
pub const STDOUT: u8 = 3;
pub const STDERR: u8 = 4;
pub const EXIT: u8 = 5;

/// Output a slow client may have waiting before it is dropped.
const MAX_PENDING: usize = 1 << 20;
/// A client's frame larger than this is not an attach client.
const MAX_FRAME: usize = 1 << 20;

/// Encodes one frame.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + payload.len());
    f.push(kind);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Splits complete frames off the front of `buf`; `Err` for a frame no client sends.
pub fn frames(buf: &mut Vec<u8>) -> Result<Vec<(u8, Vec<u8>)>, String> {
    let mut out = Vec::new();
    loop {
        if buf.len() < 5 {
            return Ok(out);
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(format!("attach frame of {len} bytes"));
        }
        if buf.len() < 5 + len {
            return Ok(out);
        }
        let kind = buf[0];
        let payload = buf[5..5 + len].to_vec();
        buf.drain(..5 + len);
        out.push((kind, payload));
    }
}

struct Client {
    sock: UnixStream,
    /// Still to learn: does it take stdin?
    hello: bool,
    stdin: bool,
    input: Vec<u8>,
    output: Vec<u8>,
}

/// What the container's input goes to.
pub enum Input {
    None,
    /// The write end of the container's stdin pipe.
    Pipe(Option<OwnedFd>),
    /// The terminal's master (the container has a tty).
    Tty(RawFd),
}

pub struct Attach {
    listener: UnixListener,
    clients: Vec<Client>,
    pub input: Input,
    /// Close the container's stdin after the first client that used it leaves.
    stdin_once: bool,
    /// Fault `attach-session-closes-stdin`.
    session_closes_stdin: bool,
    /// Fault `attach-merges-stderr`.
    merge_stderr: bool,
}

fn nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

impl Attach {
    pub fn listen(path: &Path, input: Input, stdin_once: bool) -> io::Result<Self> {
        use crate::fault::Fault;
        let faults = crate::fault::Faults::from_env().unwrap_or_default();
        let _ = std::fs::remove_file(path);
        let listener = crate::sys::via_dir_fd(path, |p| UnixListener::bind(p))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        nonblocking(&listener)?;
        Ok(Self {
            listener,
            clients: Vec::new(),
            input,
            stdin_once: stdin_once && !faults.has(Fault::AttachStdinOnceIgnored),
            session_closes_stdin: faults.has(Fault::AttachSessionClosesStdin),
            merge_stderr: faults.has(Fault::AttachMergesStderr),
        })
    }

    /// Descriptors to poll and for what (POLLOUT only while output waits).
    pub fn poll_fds(&self) -> Vec<(RawFd, libc::c_short)> {
        let mut v = vec![(self.listener.as_raw_fd(), libc::POLLIN)];
        for c in &self.clients {
            let mut ev = libc::POLLIN;
            if !c.output.is_empty() {
                ev |= libc::POLLOUT;
            }
            v.push((c.sock.as_raw_fd(), ev));
        }
        v
    }

    pub fn owns(&self, fd: RawFd) -> bool {
        fd == self.listener.as_raw_fd() || self.clients.iter().any(|c| c.sock.as_raw_fd() == fd)
    }

    /// Handles readiness of one of our descriptors.
    pub fn ready(&mut self, fd: RawFd, revents: libc::c_short) {
        if fd == self.listener.as_raw_fd() {
            while let Ok((sock, _)) = self.listener.accept() {
                if nonblocking(&sock).is_ok() {
                    self.clients.push(Client {
                        sock,
                        hello: true,
                        stdin: false,
                        input: Vec::new(),
                        output: Vec::new(),
                    });
                }
            }
            return;
        }
        let Some(i) = self.clients.iter().position(|c| c.sock.as_raw_fd() == fd) else {
            return;
        };
        let mut drop_it =
            revents & (libc::POLLERR | libc::POLLHUP) != 0 && revents & libc::POLLIN == 0;
        if revents & libc::POLLIN != 0 {
            drop_it |= self.read_client(i);
        }
        if !drop_it && revents & libc::POLLOUT != 0 {
            drop_it |= flush(&mut self.clients[i]);
        }
        if drop_it {
            self.remove(i);
        }
    }

    /// Reads what client `i` sent; true when it is gone.
    fn read_client(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 32 * 1024];
        // What came before the end is still the client's: frames then EOF in one read are
        // applied, then the client is let go.
        let mut gone = false;
        loop {
            match self.clients[i].sock.read(&mut buf) {
                Ok(0) => {
                    gone = true;
                    break;
                }
                Ok(n) => self.clients[i].input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    gone = true;
                    break;
                }
            }
        }
        let c = &mut self.clients[i];
        if c.hello {
            let Some(&first) = c.input.first() else {
                return gone;
            };
            c.stdin = first & 1 == 1;
            c.hello = false;
            c.input.drain(..1);
        }
        let frames = match frames(&mut c.input) {
            Ok(f) => f,
            Err(_) => return true,
        };
        let takes_stdin = c.stdin;
        for (kind, payload) in frames {
            match kind {
                STDIN if takes_stdin => self.write_input(&payload),
                // Without stdin_once the container's stdin outlives every session, so a
                // client's end of input is only that client's.
                STDIN_CLOSE if takes_stdin && (self.stdin_once || self.session_closes_stdin) => {
                    self.close_input()
                }
                RESIZE if payload.len() == 4 => {
                    if let Input::Tty(master) = self.input {
                        let cols = u16::from_be_bytes([payload[0], payload[1]]);
                        let rows = u16::from_be_bytes([payload[2], payload[3]]);
                        // SAFETY: the master is the shim's own descriptor, open for its life.
                        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(master) };
                        let _ = crate::pty::resize(&fd, cols, rows);
                    }
                }
                _ => {}
            }
        }
        gone
    }

    fn write_input(&mut self, data: &[u8]) {
        let fd = match &self.input {
            Input::Pipe(Some(w)) => w.as_raw_fd(),
            Input::Tty(m) => *m,
            _ => return,
        };
        // Blocking write: the container reads its stdin, or its pipe buffer holds it.
        let _ = crate::sys::write_all(fd, data);
    }

    /// The container's stdin ends (a pipe only: a terminal has no end but ^D).
    fn close_input(&mut self) {
        if let Input::Pipe(w) = &mut self.input {
            *w = None;
        }
    }

    fn remove(&mut self, i: usize) {
        let c = self.clients.remove(i);
        if c.stdin && (self.stdin_once || self.session_closes_stdin) {
            self.close_input();
        }
    }

    /// Sends container output to every client.
    pub fn broadcast(&mut self, kind: u8, data: &[u8]) {
        let kind = if kind == STDERR && self.merge_stderr {
            STDOUT
        } else {
            kind
        };
        let f = frame(kind, data);
        let mut gone = Vec::new();
        for (i, c) in self.clients.iter_mut().enumerate() {
            if c.output.len() + f.len() > MAX_PENDING {
                gone.push(i);
                continue;
            }
            c.output.extend_from_slice(&f);
            if flush(c) {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            self.remove(i);
        }
    }

    /// The container has exited: every client gets its code and the end.
    pub fn exited(&mut self, code: i32) {
        self.broadcast(EXIT, &code.to_be_bytes());
        for c in &mut self.clients {
            // Set blocking for the last words: the shim is about to end.
            let _ = rustix::fs::fcntl_setfl(&c.sock, rustix::fs::OFlags::empty());
            let _ = c.sock.write_all(&c.output);
        }
        self.clients.clear();
    }
}

/// Writes what waits for `c`; true when the client is gone.
fn flush(c: &mut Client) -> bool {
    while !c.output.is_empty() {
        match c.sock.write(&c.output) {
            Ok(0) => return true,
            Ok(n) => {
                c.output.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_giants() {
        let mut buf = frame(STDIN, b"hello");
        buf.extend(frame(RESIZE, &[0, 80, 0, 24]));
        buf.extend_from_slice(&frame(STDOUT, b"partial")[..6]);
        let got = frames(&mut buf).expect("frames");
        assert_eq!(
            got,
            vec![(STDIN, b"hello".to_vec()), (RESIZE, vec![0, 80, 0, 24])]
        );
        assert_eq!(buf.len(), 6, "the partial frame waits");
        let mut giant = vec![STDIN, 0xff, 0xff, 0xff, 0xff];
        assert!(frames(&mut giant).is_err());
    }
}
