//! Writing responses that the gateway answers itself (errors, and later the OAuth endpoints).

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

/// Writes a complete JSON response. `headers` are added after `Content-Type` and
/// `Content-Length`.
pub async fn json(
    session: &mut Session,
    status: u16,
    body: &serde_json::Value,
    headers: &[(&'static str, &str)],
) -> Result<()> {
    let body = Bytes::from(body.to_string());
    let mut resp = ResponseHeader::build(status, Some(2 + headers.len()))?;
    resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    for (name, value) in headers {
        resp.append_header(*name, *value)?;
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// Writes a response that token_module produced.
pub async fn write(session: &mut Session, response: token_module::Response) -> Result<()> {
    let mut resp = ResponseHeader::build(response.status, Some(response.headers.len() + 1))?;
    for (name, value) in &response.headers {
        resp.append_header(*name, value.as_str())?;
    }
    resp.insert_header(http::header::CONTENT_LENGTH, response.body.len())?;
    let head_only = session.req_header().method == http::Method::HEAD || response.body.is_empty();
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from(response.body)), true)
            .await?;
    }
    Ok(())
}

/// A JSON error body in the OAuth style that every gateway-made error uses:
/// `{"error": code, "error_description": description}`.
pub fn error_body(code: &str, description: &str) -> serde_json::Value {
    serde_json::json!({ "error": code, "error_description": description })
}
