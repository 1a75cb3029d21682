//! The response future of [`Reporting`](crate::Reporting).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use orca_lb_proto::grpc_status;
use pin_project_lite::pin_project;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::Code;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::call_recorder::CallRecorder;
use crate::current_call::Serving;
use crate::in_flight_call::InFlightCall;
use crate::shed::{Shed, refused_response};
use crate::trailer::{Reuse, insert_report};

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

pin_project! {
    /// Waits for a worker slot if the call was queued, then for the wrapped
    /// service's response, and hands the call's guard to the response body.
    /// A call refused by the queue's limits resolves to a `RESOURCE_EXHAUSTED`
    /// response.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
        call: Option<(InFlightCall, Option<CallRecorder>)>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Queued {
            // Boxed only on this slow path: a call that found a free slot
            // never allocates here.
            acquire: Acquire,
            #[pin]
            timeout: Sleep,
            permit: Option<OwnedSemaphorePermit>,
            service: Option<S>,
            request: Option<Request<ReqBody>>,
        },
        Running {
            #[pin]
            future: S::Future,
        },
        Refused {
            shed: Shed,
        },
        // Not a gRPC call: nothing is counted and nothing is added.
        Passthrough {
            #[pin]
            future: S::Future,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn running(
        future: S::Future,
        guard: InFlightCall,
        recorder: Option<CallRecorder>,
    ) -> Self {
        Self {
            state: State::Running { future },
            call: Some((guard, recorder)),
        }
    }

    pub(crate) fn queued(
        slots: Arc<Semaphore>,
        service: S,
        request: Request<ReqBody>,
        guard: InFlightCall,
        recorder: Option<CallRecorder>,
    ) -> Self {
        Self {
            state: State::Queued {
                timeout: tokio::time::sleep(guard.tracker().config.max_queue_wait),
                acquire: Box::pin(slots.acquire_owned()),
                permit: None,
                service: Some(service),
                request: Some(request),
            },
            call: Some((guard, recorder)),
        }
    }

    /// A request that is not a gRPC call, passed through untouched.
    pub(crate) fn passthrough(future: S::Future) -> Self {
        Self {
            state: State::Passthrough { future },
            call: None,
        }
    }

    pub(crate) fn refused(shed: Shed, guard: InFlightCall) -> Self {
        Self {
            state: State::Refused { shed },
            call: Some((guard, None)),
        }
    }
}

impl<S, ReqBody> std::fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Queued {
                    acquire,
                    timeout,
                    permit,
                    service,
                    request,
                } => {
                    if permit.is_none() {
                        match acquire.as_mut().poll(cx) {
                            Poll::Ready(acquired) => {
                                *permit =
                                    Some(acquired.expect("the slot semaphore is never closed"));
                            }
                            Poll::Pending => {
                                ready!(timeout.poll(cx));
                                this.state.set(State::Refused {
                                    shed: Shed::QueueWait,
                                });
                                continue;
                            }
                        }
                    }
                    let svc = service.as_mut().expect("polled after completion");
                    if let Err(e) = ready!(svc.poll_ready(cx)) {
                        if let Some((mut guard, _)) = this.call.take() {
                            // Failed below gRPC: counted as UNKNOWN.
                            guard.finish(Some(Code::Unknown));
                        }
                        return Poll::Ready(Err(e));
                    }
                    let now = tokio::time::Instant::now().into_std();
                    let (guard, _) = this.call.as_mut().expect("polled after completion");
                    guard.begin_service(permit.take(), now);
                    let request = request.take().expect("polled after completion");
                    let future = {
                        let (_, recorder) = this.call.as_mut().expect("polled after completion");
                        let _serving = Serving::enter(recorder);
                        svc.call(request)
                    };
                    this.state.set(State::Running { future });
                }
                StateProj::Running { future } => {
                    let result = {
                        let _serving = this.call.as_mut().and_then(|(_, r)| Serving::enter(r));
                        ready!(future.poll(cx))
                    };
                    let (mut guard, recorder) = this.call.take().expect("polled after completion");
                    guard.end_service();
                    let response = match result {
                        Ok(response) => response,
                        Err(e) => {
                            // Failed below gRPC: counted as UNKNOWN.
                            guard.finish(Some(Code::Unknown));
                            return Poll::Ready(Err(e));
                        }
                    };
                    let (mut parts, body) = response.into_parts();
                    let body = match grpc_status(&parts.headers) {
                        // Trailers-only: the headers are the trailers, so the
                        // report goes there, and the call is over.
                        Some(code) => {
                            guard.finish(Some(code));
                            insert_report(
                                &mut parts.headers,
                                guard.tracker(),
                                recorder.as_ref(),
                                guard.report_time(),
                                Reuse::Allowed,
                            );
                            if let Some(recorder) = recorder {
                                recorder.recycle();
                            }
                            ResponseBody::passthrough(body)
                        }
                        None => ResponseBody::new(body, guard, recorder),
                    };
                    return Poll::Ready(Ok(Response::from_parts(parts, body)));
                }
                StateProj::Passthrough { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::passthrough)));
                }
                StateProj::Refused { shed } => {
                    let shed = *shed;
                    let (mut guard, _) = this.call.take().expect("polled after completion");
                    return Poll::Ready(Ok(refused_response(shed, &mut guard)));
                }
            }
        }
    }
}
