//! The HTTPS client `connect qdrant --from network` runs inside Qdrant's own image, which has
//! no curl: this binary, given the stack CA, the client certificate and the API key as files.
//! It understands the part of curl's command line one uses against Qdrant's API: a path,
//! `-X`, `-d`/`--data`/`--data-binary` (`@-` reads standard input, `@FILE` a file), `--json`,
//! `-H`, `-i`, `-f`/`--fail`, `--fail-with-body`; `-s` and `-S` change nothing.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::error::UsageError;
use crate::output;
use crate::probe::ClientTls;
use crate::secrets::Secret;

/// A request, read from curl-like arguments.
#[derive(Debug, Default, PartialEq)]
struct Request {
    method: Option<String>,
    path: Option<String>,
    headers: Vec<(String, String)>,
    /// `-d` and friends: the data as given (`@-`, `@FILE` or the text).
    data: Option<String>,
    json: bool,
    include: bool,
    fail: bool,
    fail_with_body: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Request> {
    let mut request = Request::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().cloned().ok_or_else(|| UsageError(format!("{flag} needs a value")));
        match arg.as_str() {
            "-X" | "--request" => request.method = Some(value(arg)?),
            "-d" | "--data" | "--data-binary" | "--data-raw" => request.data = Some(value(arg)?),
            "--json" => {
                request.data = Some(value(arg)?);
                request.json = true;
            }
            "-H" | "--header" => {
                let header = value(arg)?;
                let (name, text) = header
                    .split_once(':')
                    .ok_or_else(|| UsageError(format!("-H {header}: a header is `Name: value`")))?;
                request.headers.push((name.trim().to_owned(), text.trim().to_owned()));
            }
            "-i" | "--include" => request.include = true,
            "-f" | "--fail" => request.fail = true,
            "--fail-with-body" => request.fail_with_body = true,
            "-s" | "-S" | "-sS" | "-Ss" | "--silent" | "--show-error" => {}
            path if path.starts_with('/') => request.path = Some(path.to_owned()),
            other => {
                return Err(UsageError(format!(
                    "{other}: inside the stack network, connect qdrant understands a path, -X, -d, --data-binary, --json, -H, -i, -f, --fail-with-body, -s and -S (no curl in Qdrant's image)"
                ))
                .into());
            }
        }
    }
    Ok(request)
}

/// The body `-d` gives: the text, standard input (`@-`) or a file (`@FILE`).
async fn body(data: &str) -> anyhow::Result<Vec<u8>> {
    match data.strip_prefix('@') {
        Some("-") => {
            use tokio::io::AsyncReadExt as _;
            let mut bytes = Vec::new();
            output::streams().0.read_to_end(&mut bytes).await.context("reading standard input")?;
            Ok(bytes)
        }
        Some(path) => std::fs::read(path).with_context(|| format!("reading {path}")),
        None => Ok(data.as_bytes().to_vec()),
    }
}

/// Runs the request inside the stack network; the exit code curl would give (22 on an HTTP
/// error with -f).
pub async fn inside(args: &[String]) -> anyhow::Result<ExitCode> {
    let request = parse(args)?;
    let base = std::env::var("HARDSTACK_CONNECT_URL").context("HARDSTACK_CONNECT_URL is not set")?;
    let dir = std::path::PathBuf::from(std::env::var("HARDSTACK_CONNECT_DIR").context("HARDSTACK_CONNECT_DIR")?);
    let read = |name: &str| std::fs::read(dir.join(name)).with_context(|| format!("reading {name}"));
    let client = match (read("client.crt"), read("client.key")) {
        (Ok(cert), Ok(key)) => Some((cert, Secret::new(String::from_utf8(key).context("the client key is text")?))),
        _ => None,
    };
    let tls = ClientTls { ca_pem: read("ca.crt")?, client };
    let headers = String::from_utf8(read("headers")?).context("the header file is text")?;
    let key = headers.trim().strip_prefix("api-key:").context("the header file holds the API key")?.trim();
    let body = match &request.data {
        Some(data) => Some(body(data).await?),
        None => None,
    };
    let method = request.method.clone().unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.to_owned());
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| UsageError(format!("-X {method}")))?;
    let url = format!("{base}{}", request.path.as_deref().unwrap_or("/"));
    let mut call = crate::probe::qdrant_client(&tls)?.request(method, &url).header("api-key", key);
    if request.json {
        call = call.header("content-type", "application/json").header("accept", "application/json");
    } else if body.is_some() {
        call = call.header("content-type", "application/x-www-form-urlencoded");
    }
    for (name, value) in &request.headers {
        call = call.header(name, value);
    }
    if let Some(body) = body {
        call = call.body(body);
    }
    let response = call.send().await.with_context(|| format!("requesting {url}"))?;
    let status = response.status();
    let mut head = String::new();
    if request.include {
        head.push_str(&format!("HTTP/1.1 {status}\r\n"));
        for (name, value) in response.headers() {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
        }
        head.push_str("\r\n");
    }
    let bytes = response.bytes().await.context("reading the answer")?;
    let failed = status.is_client_error() || status.is_server_error();
    if failed && request.fail {
        return Ok(ExitCode::from(22));
    }
    output::raw_stdout(head.as_bytes())?;
    output::raw_stdout(&bytes)?;
    Ok(if failed && request.fail_with_body { ExitCode::from(22) } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn reads_the_curl_arguments_one_uses_against_qdrant() {
        let request = parse(&args("-sS -X PUT /collections/c --json @- -H X-Trace:1 -f")).unwrap();
        assert_eq!(request.method.as_deref(), Some("PUT"));
        assert_eq!(request.path.as_deref(), Some("/collections/c"));
        assert_eq!(request.data.as_deref(), Some("@-"));
        assert!(request.json && request.fail && !request.include);
        assert_eq!(request.headers, vec![("X-Trace".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn an_argument_it_does_not_understand_is_a_usage_error_that_names_it() {
        let err = parse(&args("--compressed /")).unwrap_err();
        assert!(err.is::<UsageError>());
        assert!(err.to_string().starts_with("--compressed: "), "{err}");
        assert!(parse(&args("-X")).unwrap_err().to_string().contains("-X needs a value"));
    }
}
