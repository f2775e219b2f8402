//! The request-head scanner: a byte-at-a-time state machine over the TCP payload.
//!
//! The payload is copied, a window of `SCAN_WINDOW` bytes at a time, into a per-CPU scratch
//! buffer (`window`) and scanned there with masked indexes, so the verifier needs no
//! per-byte packet bounds proof. `bpf_loop` drives the scan `SCAN_CHUNK` bytes per
//! callback (`advance`): the callback is verified once, whatever the payload length, and
//! the state carried in `ScanState` lets a header line run across chunk and window
//! boundaries (and, later, segments). The runs that consume bytes without a decision live
//! in the submodules, one job each; `step` takes the bytes no run takes.
//!
//! Grammar (RFC 9112 §2–5), as far as a guard needs it:
//!   request-line = method SP target SP "HTTP/1." DIGIT [CR] LF
//!   field-line   = name ":" OWS value [CR] LF      (name = 1*tchar, no space before ":")
//!   head end     = [CR] LF on its own
//! After a head the next bytes are tried as another request line (pipelining); anything
//! else is a body and ends the scan.

mod base64;
mod cookie;
mod decide;
mod digits;
mod header;
mod line;
mod machine;
mod number;
mod redact;
mod request_line;

mod skip;
mod target;
pub mod window;
