//! duet's own statements on a pooled connection: the client's settings replayed before a
//! transaction, read back after one that may have changed them. Nothing of them reaches a client.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::backend_pool::PooledConn;
use super::frames::next_message;
use super::link::LinkError;
use super::settings::Settings;
use crate::wire::backend as tag;
use crate::wire::messages::{Message, Query};

/// Read size.
const READ_SIZE: usize = 16 * 1024;

/// Gives `conn` the client's settings, if it has others: one round trip, answers kept from the
/// client.
pub async fn apply_settings(conn: &mut PooledConn, wanted: &Settings) -> Result<(), LinkError> {
    if !conn.settings.differs(wanted) {
        return Ok(());
    }
    run_own_query(conn, &wanted.replay_statement()).await?;
    conn.settings = wanted.clone();
    Ok(())
}

/// Runs duet's own simple query on `conn` and returns its rows (text columns); nothing of it
/// reaches a client. ParameterStatus messages update the connection's parameters.
pub async fn run_own_query(
    conn: &mut PooledConn,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, LinkError> {
    let mut out = BytesMut::new();
    Query {
        text: sql.as_bytes(),
    }
    .encode(&mut out);
    conn.stream
        .write_all(&out)
        .await
        .map_err(LinkError::Backend)?;
    conn.stream.flush().await.map_err(LinkError::Backend)?;
    let mut rows = Vec::new();
    let mut error: Option<LinkError> = None;
    loop {
        let (message, len) = loop {
            if let Some(found) = next_message(&conn.buf)? {
                break found;
            }
            read_more(&mut conn.stream, &mut conn.buf).await?;
        };
        let frame = conn.buf.split_to(len);
        let body = &frame[5..];
        match message {
            tag::DATA_ROW => rows.push(data_row(body)?),
            tag::PARAMETER_STATUS => conn.note_parameter(body),
            tag::ERROR_RESPONSE => {
                let (code, text) =
                    crate::wire::messages::ErrorResponse::lenient_code_and_message(body);
                error = Some(LinkError::Refused {
                    code,
                    message: text,
                });
            }
            tag::READY_FOR_QUERY => break,
            _ => {}
        }
    }
    match error {
        Some(error) => Err(error),
        None => Ok(rows),
    }
}

/// The text columns of a DataRow.
fn data_row(body: &[u8]) -> Result<Vec<Option<String>>, LinkError> {
    Ok(crate::wire::messages::DataRow::decode(body)?
        .columns
        .into_iter()
        .map(|column| column.map(|value| String::from_utf8_lossy(value).into_owned()))
        .collect())
}

async fn read_more<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut BytesMut,
) -> Result<(), LinkError> {
    if buf.capacity() - buf.len() < READ_SIZE / 4 {
        buf.reserve(READ_SIZE);
    }
    match stream.read_buf(buf).await {
        Ok(0) => Err(LinkError::BackendClosed),
        Ok(_) => Ok(()),
        Err(err) => Err(LinkError::Backend(err)),
    }
}
