//! HTTP request heads for tests. The identity values are fake (UK drama range) and are
//! exported so privacy tests can look for them in every output.

/// A fake MSISDN (Ofcom drama range).
pub const MSISDN: &str = "447700900123";
/// A fake X-UIDH-style tracking token.
pub const UIDH: &str = "OTgxNTk2NzE0ZmFrZXRva2Vu";
/// A fake X-ACR-style reference.
pub const ACR: &str = "acr-fake-9f8e7d6c5b4a";

/// Every identity value the tests send.
pub const VALUES: &[&str] = &[MSISDN, UIDH, ACR];

/// `GET /path HTTP/1.1` with Host, the given extra lines (`"Name: value"`), and a blank
/// line, CRLF line ends.
#[must_use]
pub fn get(extra: &[&str]) -> Vec<u8> {
    let mut s = String::from("GET /index.html?q=1 HTTP/1.1\r\nHost: www.example.com\r\n");
    s.push_str("User-Agent: Mozilla/5.0 (Linux; Android 14) leakguard-test\r\n");
    push_lines(&mut s, extra);
    s.push_str("Accept: */*\r\n\r\n");
    s.into_bytes()
}

/// A request padded with `Cookie` bytes so that the extra lines start at or after
/// payload byte `at`.
#[must_use]
pub fn get_with_header_at(at: usize, extra: &[&str]) -> Vec<u8> {
    let head = "GET / HTTP/1.1\r\nHost: www.example.com\r\nCookie: c=";
    let pad = at.saturating_sub(head.len() + 2);
    let mut s = String::from(head);
    s.push_str(&"a".repeat(pad));
    s.push_str("\r\n");
    assert!(s.len() >= at);
    push_lines(&mut s, extra);
    s.push_str("\r\n");
    s.into_bytes()
}

/// A realistic request of about `len` bytes with 12 header lines and no identity header.
#[must_use]
pub fn browser_get(len: usize) -> Vec<u8> {
    let lines = [
        "Host: www.example.com",
        "User-Agent: Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile",
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8",
        "Accept-Language: en-GB,en;q=0.9",
        "Accept-Encoding: gzip, deflate",
        "Connection: keep-alive",
        "Upgrade-Insecure-Requests: 1",
        "Referer: http://www.example.com/news/today.html",
        "DNT: 1",
        "Cache-Control: max-age=0",
        "If-Modified-Since: Tue, 24 Nov 2026 10:00:00 GMT",
    ];
    let mut s = String::from("GET /articles/2026/11/25/story.html HTTP/1.1\r\n");
    push_lines(&mut s, &lines);
    end_with_cookie(s, len)
}

/// The segments request number `n` with `head` is sent in: one, or (every third) two,
/// cut inside the identity number's value, so that heads open across segments meet
/// whatever the test does to the guard between them.
#[must_use]
pub fn every_third_cut(n: u64, head: Vec<u8>) -> Vec<Vec<u8>> {
    if n % 3 == 2 {
        let cut = find(&head, MSISDN.as_bytes()).expect("the head carries the number") + 4;
        vec![head[..cut].to_vec(), head[cut..].to_vec()]
    } else {
        vec![head]
    }
}

/// Position of `needle` in `hay`.
#[must_use]
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A browser-like GET of about `len` bytes with `lines` header lines (at least 12): the
/// lines of [`browser_get`], more of the kind a page load carries, and a `Cookie` that
/// makes up the length.
#[must_use]
pub fn browser_get_lines(len: usize, lines: usize) -> Vec<u8> {
    const MORE: [&str; 24] = [
        "Sec-Fetch-Dest: document",
        "Sec-Fetch-Mode: navigate",
        "Sec-Fetch-Site: none",
        "Sec-Fetch-User: ?1",
        "Sec-CH-UA-Mobile: ?1",
        "Sec-CH-UA-Platform: \"Android\"",
        "Pragma: no-cache",
        "Priority: u=0, i",
        "X-Requested-With: com.android.chrome",
        "X-Forwarded-Proto: http",
        "Via: 1.1 gateway",
        "Origin: http://www.example.com",
        "If-None-Match: \"5f2a-1b3\"",
        "TE: trailers",
        "Save-Data: on",
        "Viewport-Width: 412",
        "Device-Memory: 8",
        "DPR: 2.625",
        "Downlink: 10",
        "ECT: 4g",
        "RTT: 50",
        "Width: 1080",
        "Purpose: prefetch",
        "X-Client-Data: CIe2yQEIo7bJAQ",
    ];
    let base = browser_get(0);
    let head = String::from_utf8(base).unwrap();
    let (before_cookie, _) = head.split_once("Cookie: sid=").unwrap();
    let mut s = before_cookie.to_owned();
    push_lines(&mut s, &MORE[..lines.saturating_sub(12).min(MORE.len())]);
    end_with_cookie(s, len)
}

/// Appends each of `lines` and its CRLF.
fn push_lines(s: &mut String, lines: &[&str]) {
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
}

/// `s` ended by a `Cookie` line that brings the head to `len` bytes (as far as the line's
/// own bytes allow) and the blank line.
fn end_with_cookie(mut s: String, len: usize) -> Vec<u8> {
    let fixed = s.len() + "Cookie: sid=\r\n\r\n".len();
    s.push_str("Cookie: sid=");
    s.push_str(&"q".repeat(len.saturating_sub(fixed)));
    s.push_str("\r\n\r\n");
    s.into_bytes()
}
