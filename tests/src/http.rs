//! A minimal HTTP/1.1 client for tests against the portal over real TCP (one request per
//! connection, `Connection: close`), with a cookie jar of one cookie.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding undone).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The CSRF token of the first form on the page.
    pub fn csrf(&self) -> Option<String> {
        let t = self.text();
        let at = t.find("name=\"csrf\" value=\"")?;
        t.get(at + 19..)?.split('"').next().map(str::to_string)
    }
}

/// A browser-like client: keeps the session cookie the server sets.
#[derive(Debug)]
pub struct Client {
    addr: String,
    /// `name=value` of the session cookie.
    pub cookie: Option<String>,
    source: Option<std::net::IpAddr>,
}

impl Client {
    /// A client for the server at `addr` (`IP:PORT`).
    pub fn new(addr: &str) -> Client {
        Client {
            addr: addr.to_string(),
            cookie: None,
            source: None,
        }
    }

    /// A client that connects from `source` (a loopback address such as 127.0.3.7: a
    /// different client as the server counts them).
    pub fn from_source(addr: &str, source: std::net::IpAddr) -> Client {
        Client {
            source: Some(source),
            ..Client::new(addr)
        }
    }

    fn connect(&self) -> std::io::Result<TcpStream> {
        let Some(src) = self.source else {
            return TcpStream::connect(&self.addr);
        };
        connect_from(&self.addr, src)
    }

    /// GET `path`.
    pub fn get(&mut self, path: &str) -> std::io::Result<Response> {
        self.request("GET", path, None)
    }

    /// POST a form.
    pub fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> std::io::Result<Response> {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.request(
            "POST",
            path,
            Some(("application/x-www-form-urlencoded", body.into_bytes())),
        )
    }

    /// POST multipart/form-data: (name, file name, bytes).
    pub fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, Option<&str>, &[u8])],
    ) -> std::io::Result<Response> {
        let mut body = Vec::new();
        for (name, file, data) in fields {
            body.extend_from_slice(b"--postern-test-boundary\r\n");
            let disposition = match file {
                Some(f) => format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                ),
                None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
            };
            body.extend_from_slice(disposition.as_bytes());
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--postern-test-boundary--\r\n");
        self.request(
            "POST",
            path,
            Some(("multipart/form-data; boundary=postern-test-boundary", body)),
        )
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> std::io::Result<Response> {
        let mut s = self.connect()?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(c) = &self.cookie {
            req.push_str(&format!("Cookie: {c}\r\n"));
        }
        let data = match body {
            Some((ctype, data)) => {
                req.push_str(&format!(
                    "Content-Type: {ctype}\r\nContent-Length: {}\r\n",
                    data.len()
                ));
                data
            }
            None => Vec::new(),
        };
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        s.write_all(&data)?;
        // Until the server closes, or as far as Content-Length says (some servers, such as
        // chromedriver, keep the connection open despite `Connection: close`).
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            // A signal to this process (a child exiting) interrupts the read: read again.
            let n = match s.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if len.is_some_and(|len| raw.len() >= end + 4 + len) {
                    break;
                }
            }
        }
        let resp = parse(&raw).ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
        for (k, v) in &resp.headers {
            if k == "set-cookie" {
                let pair = v.split(';').next().unwrap_or("").to_string();
                self.cookie = if v.contains("Max-Age=0") {
                    None
                } else {
                    Some(pair)
                };
            }
        }
        Ok(resp)
    }
}

fn parse(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(raw.get(..end)?).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw.get(end + 4..)?.to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body)?;
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(b.get(..eol)?).ok()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(eol + 2..eol + 2 + size)?);
        b = b.get(eol + 4 + size..)?;
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A TCP connection to `addr` from the local address `source` (any port).
pub fn connect_from(addr: &str, source: std::net::IpAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let to: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| std::io::Error::other("not IP:PORT"))?;
    let s = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    s.bind(&std::net::SocketAddr::new(source, 0).into())?;
    s.connect(&to.into())?;
    Ok(s.into())
}
