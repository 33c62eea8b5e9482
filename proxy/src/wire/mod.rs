//! The PostgreSQL wire protocol, as much of it as a forwarding proxy needs.
//!
//! duet forwards bytes; it decodes only message headers (to know boundaries, type bytes and
//! transaction state) and the bodies of the few messages it acts on, each a type of its own in
//! [`messages`], authentication and BackendKeyData included. Only the untyped startup packets
//! ([`startup`]: StartupMessage, CancelRequest) use pgwire's codecs. Header scanning is our own
//! because pgwire's codecs need a complete message in the buffer, while duet streams rows and COPY
//! data larger than any buffer straight through.

pub mod auth;
pub mod error;
pub mod frame;
pub mod messages;
pub(crate) mod read;
pub mod startup;

/// Frontend (client → server) message types the protocol defines after startup.
pub mod frontend {
    /// Bind.
    pub const BIND: u8 = b'B';
    /// Close.
    pub const CLOSE: u8 = b'C';
    /// CopyData.
    pub const COPY_DATA: u8 = b'd';
    /// CopyDone.
    pub const COPY_DONE: u8 = b'c';
    /// CopyFail.
    pub const COPY_FAIL: u8 = b'f';
    /// Describe.
    pub const DESCRIBE: u8 = b'D';
    /// Execute.
    pub const EXECUTE: u8 = b'E';
    /// Flush.
    pub const FLUSH: u8 = b'H';
    /// FunctionCall.
    pub const FUNCTION_CALL: u8 = b'F';
    /// Parse.
    pub const PARSE: u8 = b'P';
    /// PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse.
    pub const PASSWORD: u8 = b'p';
    /// Simple Query.
    pub const QUERY: u8 = b'Q';
    /// Sync.
    pub const SYNC: u8 = b'S';
    /// Terminate.
    pub const TERMINATE: u8 = b'X';

    /// Whether `tag` is a message type a client may send after startup.
    pub fn is_known(tag: u8) -> bool {
        matches!(
            tag,
            BIND | CLOSE
                | COPY_DATA
                | COPY_DONE
                | COPY_FAIL
                | DESCRIBE
                | EXECUTE
                | FLUSH
                | FUNCTION_CALL
                | PARSE
                | PASSWORD
                | QUERY
                | SYNC
                | TERMINATE
        )
    }
}

/// Backend (server → client) message types duet acts on.
pub mod backend {
    /// Authentication request.
    pub const AUTHENTICATION: u8 = b'R';
    /// BackendKeyData.
    pub const BACKEND_KEY_DATA: u8 = b'K';
    /// CommandComplete: a statement finished.
    pub const COMMAND_COMPLETE: u8 = b'C';
    /// EmptyQueryResponse: the answer to an empty query string.
    pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
    /// PortalSuspended: an Execute reached its row limit.
    pub const PORTAL_SUSPENDED: u8 = b's';
    /// ErrorResponse.
    pub const ERROR_RESPONSE: u8 = b'E';
    /// NegotiateProtocolVersion.
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
    /// ReadyForQuery.
    pub const READY_FOR_QUERY: u8 = b'Z';
    /// CopyInResponse: the server is in copy-in mode (`COPY … FROM STDIN`).
    pub const COPY_IN_RESPONSE: u8 = b'G';
    /// ParameterDescription: the parameter types of a described statement.
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    /// RowDescription: the result columns of a described statement or portal, or of a query.
    pub const ROW_DESCRIPTION: u8 = b'T';
    /// NoData: a described statement returns no rows.
    pub const NO_DATA: u8 = b'n';
    /// ParseComplete.
    pub const PARSE_COMPLETE: u8 = b'1';
    /// BindComplete.
    pub const BIND_COMPLETE: u8 = b'2';
    /// CloseComplete.
    pub const CLOSE_COMPLETE: u8 = b'3';
    /// DataRow.
    pub const DATA_ROW: u8 = b'D';
    /// NoticeResponse (asynchronous: answers no request).
    pub const NOTICE_RESPONSE: u8 = b'N';
    /// ParameterStatus (asynchronous).
    pub const PARAMETER_STATUS: u8 = b'S';
    /// NotificationResponse (asynchronous).
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
}
