//! A plain OTLP/gRPC metrics receiver for tests: one message per export.

use std::sync::mpsc;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};

struct Receiver(mpsc::Sender<()>);

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        _req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let _ = self.0.send(());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// A plain OTLP/gRPC metrics receiver on its own thread and runtime: its `http://` URL
/// and one message per export.
pub(crate) fn receiver() -> (String, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let (addr_tx, addr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let incoming =
                tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
                    .unwrap();
            addr_tx.send(incoming.local_addr().unwrap()).unwrap();
            tonic::transport::Server::builder()
                .add_service(MetricsServiceServer::new(Receiver(tx)))
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
    });
    (format!("http://{}", addr_rx.recv().unwrap()), rx)
}
