//! APDU transports (03-keys.md §11.1–§11.3): USB HID for physical devices, TCP with the
//! Speculos framing for the emulator and the in-repo fake device.
//!
//! Transports are blocking and are only ever called from a blocking thread, under the device
//! mutex (see `device.rs`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// One command APDU. `data` is at most 255 bytes (one-byte `Lc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apdu {
    /// Class.
    pub cla: u8,
    /// Instruction.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data.
    pub data: Vec<u8>,
}

impl Apdu {
    /// Wire form `CLA INS P1 P2 Lc data`.
    pub fn to_bytes(&self) -> Vec<u8> {
        debug_assert!(self.data.len() <= 255, "APDU data over 255 bytes");
        let mut out = Vec::with_capacity(5 + self.data.len());
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2, self.data.len() as u8]);
        out.extend_from_slice(&self.data);
        out
    }

    /// Parses the wire form (used by the fake device).
    pub fn from_bytes(b: &[u8]) -> Option<Apdu> {
        if b.len() < 5 || b.len() != 5 + b[4] as usize {
            return None;
        }
        Some(Apdu { cla: b[0], ins: b[1], p1: b[2], p2: b[3], data: b[5..].to_vec() })
    }
}

/// A response: data and status word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApduResponse {
    /// Response data (without the status word).
    pub data: Vec<u8>,
    /// Status word.
    pub sw: u16,
}

/// Transport failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No complete response before the timeout.
    #[error("timed out waiting for the device")]
    Timeout,
    /// No device found.
    #[error("no Ledger device found")]
    NotFound,
    /// The connection failed or closed.
    #[error("device disconnected: {0}")]
    Disconnected(String),
    /// Malformed framing.
    #[error("transport protocol error: {0}")]
    Protocol(String),
}

/// A blocking APDU transport.
pub trait ApduTransport: Send {
    /// Sends one APDU and waits for its response, at most `timeout`.
    fn exchange(&mut self, apdu: &Apdu, timeout: Duration) -> Result<ApduResponse, TransportError>;
}

/// TCP with the Speculos framing: request = u32 BE length ‖ APDU; response = u32 BE data length
/// ‖ data ‖ status word (2 bytes).
pub struct TcpTransport {
    stream: TcpStream,
}

impl TcpTransport {
    /// Connects to `addr` (`host:port`).
    pub fn connect(addr: &str, timeout: Duration) -> Result<TcpTransport, TransportError> {
        let addrs: Vec<SocketAddr> =
            addr.to_socket_addrs().map_err(|e| TransportError::Disconnected(format!("{addr}: {e}")))?.collect();
        let mut last = TransportError::NotFound;
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true).ok();
                    return Ok(TcpTransport { stream });
                }
                Err(e) => last = TransportError::Disconnected(format!("{addr}: {e}")),
            }
        }
        Err(last)
    }
}

fn io_err(e: std::io::Error) -> TransportError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => TransportError::Timeout,
        _ => TransportError::Disconnected(e.to_string()),
    }
}

impl ApduTransport for TcpTransport {
    fn exchange(&mut self, apdu: &Apdu, timeout: Duration) -> Result<ApduResponse, TransportError> {
        let bytes = apdu.to_bytes();
        let mut frame = (bytes.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&bytes);
        self.stream.set_write_timeout(Some(timeout.max(Duration::from_millis(1)))).map_err(io_err)?;
        self.stream.write_all(&frame).map_err(io_err)?;
        let deadline = Instant::now() + timeout;
        let mut read_exact = |buf: &mut [u8]| -> Result<(), TransportError> {
            let mut filled = 0;
            while filled < buf.len() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(TransportError::Timeout);
                }
                self.stream.set_read_timeout(Some(left)).map_err(io_err)?;
                match self.stream.read(&mut buf[filled..]) {
                    Ok(0) => return Err(TransportError::Disconnected("connection closed".into())),
                    Ok(n) => filled += n,
                    Err(e) => return Err(io_err(e)),
                }
            }
            Ok(())
        };
        let mut len = [0u8; 4];
        read_exact(&mut len)?;
        let n = u32::from_be_bytes(len) as usize;
        if n > 64 * 1024 {
            return Err(TransportError::Protocol(format!("response length {n}")));
        }
        let mut rest = vec![0u8; n + 2];
        read_exact(&mut rest)?;
        let sw = u16::from_be_bytes([rest[n], rest[n + 1]]);
        rest.truncate(n);
        Ok(ApduResponse { data: rest, sw })
    }
}

/// HID packet size.
pub const HID_PACKET: usize = 64;
const CHANNEL: [u8; 2] = [0x01, 0x01];
const TAG: u8 = 0x05;

/// Splits an APDU into 64-byte HID packets: `[0x01, 0x01, 0x05, seq_hi, seq_lo, payload…]`,
/// sequence from 0, the first payload starting with the APDU length (u16 BE), zero-padded.
pub fn hid_frames(apdu: &[u8]) -> Vec<[u8; HID_PACKET]> {
    let mut payload = (apdu.len() as u16).to_be_bytes().to_vec();
    payload.extend_from_slice(apdu);
    payload
        .chunks(HID_PACKET - 5)
        .enumerate()
        .map(|(seq, chunk)| {
            let mut p = [0u8; HID_PACKET];
            p[..2].copy_from_slice(&CHANNEL);
            p[2] = TAG;
            p[3..5].copy_from_slice(&(seq as u16).to_be_bytes());
            p[5..5 + chunk.len()].copy_from_slice(chunk);
            p
        })
        .collect()
}

/// Reassembles a response from HID packets.
#[derive(Debug, Default)]
pub struct HidReassembler {
    expected: Option<usize>,
    seq: u16,
    buf: Vec<u8>,
}

impl HidReassembler {
    /// Feeds one packet; returns the complete response (data ‖ status word) when done.
    pub fn push(&mut self, packet: &[u8]) -> Result<Option<Vec<u8>>, TransportError> {
        if packet.len() < 5 || packet[..2] != CHANNEL || packet[2] != TAG {
            return Err(TransportError::Protocol("wrong channel or tag".into()));
        }
        let seq = u16::from_be_bytes([packet[3], packet[4]]);
        if seq != self.seq {
            return Err(TransportError::Protocol(format!("sequence {seq}, expected {}", self.seq)));
        }
        self.seq += 1;
        let mut body = &packet[5..];
        if self.expected.is_none() {
            if body.len() < 2 {
                return Err(TransportError::Protocol("short first packet".into()));
            }
            self.expected = Some(u16::from_be_bytes([body[0], body[1]]) as usize);
            body = &body[2..];
        }
        let want = self.expected.expect("set above");
        let take = (want - self.buf.len()).min(body.len());
        self.buf.extend_from_slice(&body[..take]);
        Ok((self.buf.len() == want).then(|| std::mem::take(&mut self.buf)))
    }
}

/// Splits `data ‖ sw` into a response.
pub fn split_sw(mut raw: Vec<u8>) -> Result<ApduResponse, TransportError> {
    if raw.len() < 2 {
        return Err(TransportError::Protocol("response shorter than a status word".into()));
    }
    let sw = u16::from_be_bytes([raw[raw.len() - 2], raw[raw.len() - 1]]);
    raw.truncate(raw.len() - 2);
    Ok(ApduResponse { data: raw, sw })
}

/// USB HID transport to a physical Ledger (vendor id 0x2C97, interface 0).
#[cfg(feature = "hid")]
pub struct HidTransport {
    device: hidapi::HidDevice,
}

#[cfg(feature = "hid")]
impl HidTransport {
    /// Opens the first matching device (others are logged).
    pub fn open() -> Result<HidTransport, TransportError> {
        let api = hidapi::HidApi::new().map_err(|e| TransportError::Disconnected(e.to_string()))?;
        let mut matches = api
            .device_list()
            .filter(|d| d.vendor_id() == 0x2C97 && (d.interface_number() == 0 || d.usage_page() == 0xFFA0));
        let first = matches.next().ok_or(TransportError::NotFound)?;
        for other in matches {
            tracing::info!("ignoring additional Ledger device at {:?}", other.path());
        }
        let device = first.open_device(&api).map_err(|e| TransportError::Disconnected(e.to_string()))?;
        Ok(HidTransport { device })
    }
}

#[cfg(feature = "hid")]
impl ApduTransport for HidTransport {
    fn exchange(&mut self, apdu: &Apdu, timeout: Duration) -> Result<ApduResponse, TransportError> {
        for packet in hid_frames(&apdu.to_bytes()) {
            let mut report = [0u8; HID_PACKET + 1];
            report[1..].copy_from_slice(&packet);
            self.device.write(&report).map_err(|e| TransportError::Disconnected(e.to_string()))?;
        }
        let deadline = Instant::now() + timeout;
        let mut asm = HidReassembler::default();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TransportError::Timeout);
            }
            let slice = left.min(Duration::from_millis(100)).as_millis() as i32;
            let mut buf = [0u8; HID_PACKET];
            let n =
                self.device.read_timeout(&mut buf, slice).map_err(|e| TransportError::Disconnected(e.to_string()))?;
            if n == 0 {
                continue;
            }
            if let Some(raw) = asm.push(&buf[..n])? {
                return split_sw(raw);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hid_frames_round_trip_through_the_reassembler() {
        let apdu: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        let frames = hid_frames(&apdu);
        assert_eq!(frames.len(), (2 + 300usize).div_ceil(59));
        assert_eq!(&frames[0][..7], &[0x01, 0x01, 0x05, 0x00, 0x00, 0x01, 0x2C]);
        assert_eq!(&frames[1][..5], &[0x01, 0x01, 0x05, 0x00, 0x01]);
        let mut asm = HidReassembler::default();
        let mut out = None;
        for f in &frames {
            out = asm.push(f).unwrap();
        }
        assert_eq!(out.unwrap(), apdu);
        let mut asm = HidReassembler::default();
        assert!(asm.push(&frames[1]).is_err(), "sequence must start at 0");
        let mut bad = frames[0];
        bad[2] = 0x06;
        assert!(HidReassembler::default().push(&bad).is_err());
    }
}
