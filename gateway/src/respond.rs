//! Writing the responses the gateway answers itself (its errors, the OAuth endpoints).

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

/// Writes a complete response (a `HEAD` request gets the headers only). When the request's
/// body was not read (a refusal), the connection is not kept: what remains of the body must
/// not be taken for the next request, nor wait on the next request's deadline.
pub async fn write(session: &mut Session, response: token_module::Response) -> Result<()> {
    if !session.is_body_done() {
        session.set_keepalive(None);
    }
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
