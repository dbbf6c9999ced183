use std::pin::Pin;

use berth_proto::lifecycle::v1::{Envelope, SubscribeRequest, events_server::Events};
use futures::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tonic::{Request, Response, Status};

use crate::events::{Bus, Filter};

pub struct Service(pub Bus);

#[tonic::async_trait]
impl Events for Service {
    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<Envelope, Status>> + Send>>;

    async fn subscribe(
        &self,
        req: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let filter = Filter::parse(&req.into_inner().filters).map_err(Status::invalid_argument)?;
        let stream = BroadcastStream::new(self.0.subscribe()).filter_map(move |r| match r {
            Ok(e) if filter.matches(&e) => Some(Ok(e)),
            Ok(_) => None,
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                tracing::warn!("an events subscriber fell behind and lost {n} events");
                None
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
