//! The Modbus servers over [`Equipment`]: Modbus TCP on a listener (any number of
//! concurrent connections) and Modbus RTU on a serial port or pty.
//!
//! Owns the mapping of an [`Answer`] to the wire: TCP answers an unknown unit id with
//! exception 0x0B GatewayTargetDevice, as a Modbus TCP gateway does; RTU does not answer
//! it (nor broadcasts to unit 0), as on a real bus. Framing is tokio-modbus's.

use std::future::{ready, Future, Ready};
use std::io;
use std::net::SocketAddr;
use std::path::Path;

use tokio::net::{TcpListener, TcpStream};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Response, SlaveRequest};

use super::{Answer, Equipment};

/// Serves `equipment` on `listener` until `shutdown` completes; then every connection
/// is closed. Returns an accept error (which also closes every connection: restart it
/// with a new listener if needed).
pub async fn serve_tcp(
    listener: TcpListener,
    equipment: Equipment,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let server = tokio_modbus::server::tcp::Server::new(listener);
    let handler = Handler {
        equipment,
        unknown_unit: Some(ExceptionCode::GatewayTargetDevice),
    };
    let on_connected = |stream: TcpStream, _peer: SocketAddr| {
        let handler = handler.clone();
        async move {
            // One small frame each way per request: no Nagle delays. (An error here would
            // stop the whole server: the connection's first read will tell instead.)
            let _ = stream.set_nodelay(true);
            Ok(Some((handler, stream)))
        }
    };
    // A connection's read or write error only ends that connection.
    let on_process_error = |_: io::Error| {};
    tokio::select! {
        served = server.serve(&on_connected, on_process_error) => served,
        () = shutdown => Ok(()),
    }
}

/// Opens the serial port (or pty) at `path`, 8N1 at `baud_rate`, and gives the future
/// that serves `equipment` on it as Modbus RTU until `shutdown` completes. The port is
/// open once this returns (so a client may start); call it inside a tokio runtime.
pub fn serve_rtu(
    path: &Path,
    baud_rate: u32,
    equipment: Equipment,
    shutdown: impl Future<Output = ()>,
) -> io::Result<impl Future<Output = io::Result<()>>> {
    let server = tokio_modbus::server::rtu::Server::new_from_path(path, baud_rate)?;
    let handler = Handler {
        equipment,
        unknown_unit: None,
    };
    Ok(async move {
        tokio::select! {
            served = server.serve_forever(handler) => served,
            () = shutdown => Ok(()),
        }
    })
}

/// The tokio-modbus service: every request goes to its unit in the equipment.
#[derive(Debug, Clone)]
struct Handler {
    equipment: Equipment,
    /// What an unknown unit id gets (`None`: no reply).
    unknown_unit: Option<ExceptionCode>,
}

impl Service for Handler {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        ready(match self.equipment.answer(req.slave, &req.request) {
            Answer::Response(response) => Ok(Some(response)),
            Answer::Exception(code) => Err(code),
            Answer::NoReply => Ok(None),
            Answer::NoSuchUnit => self.unknown_unit.map_or(Ok(None), Err),
        })
    }
}
