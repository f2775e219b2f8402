//! The capture reader of `leakguard audit` on arbitrary bytes (pcap or pcapng): never a
//! panic, whatever the headers and lengths claim.
#![no_main]

use leakguard::audit;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = audit::packets(data, |_, link, bytes| {
        if let Some(frame) = audit::to_ethernet(link, bytes) {
            assert!(frame.len() <= bytes.len() + 14);
        }
        Ok(())
    });
});
