//! The connection handler is generic over `Sink + Stream`: here it is driven through in-memory
//! channels, with no socket at all, against a real app (in-memory backends).

mod common;

use axum::extract::ws::Message;
use futures_util::{Sink, Stream, StreamExt};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use wagu_engine::sessions::CreateRoom;
use wagu_gateway::App;
use wagu_proto::ServerMessage;
use wagu_proto::codec::decode_server;

async fn next(rx: &mut mpsc::UnboundedReceiver<Message>) -> ServerMessage {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a frame within 5s")
            .expect("connection open");
        if let Message::Text(t) = m {
            return decode_server(t.as_bytes()).unwrap();
        }
    }
}

/// One object that is both ends, as a WebSocket is: the sink and the stream side by side.
struct Duplex<K, S> {
    sink: K,
    stream: S,
}

impl<K: Sink<Message> + Unpin, S: Unpin> Sink<Message> for Duplex<K, S> {
    type Error = K::Error;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), K::Error>> {
        Pin::new(&mut self.sink).poll_ready(cx)
    }
    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), K::Error> {
        Pin::new(&mut self.sink).start_send(item)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), K::Error>> {
        Pin::new(&mut self.sink).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), K::Error>> {
        Pin::new(&mut self.sink).poll_close(cx)
    }
}

impl<K: Unpin, S: Stream + Unpin> Stream for Duplex<K, S> {
    type Item = S::Item;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        Pin::new(&mut self.stream).poll_next(cx)
    }
}

#[tokio::test]
async fn a_connection_over_channels_joins_and_chats() {
    let app = App::build(common::test_config()).await.unwrap();
    let state = app.state.clone();
    let created = state.rooms.create(CreateRoom::default()).await.unwrap();

    // Client → server frames, and server → client frames, as plain channels.
    let (to_server, from_client) = mpsc::unbounded_channel::<Result<Message, axum::Error>>();
    let (to_client, mut from_server) = mpsc::unbounded_channel::<Message>();
    let stream = futures_util::stream::unfold(from_client, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    })
    .boxed();
    let sink = futures_util::sink::unfold(to_client, |tx, m: Message| async move {
        tx.send(m).map_err(|_| axum::Error::new("client gone"))?;
        Ok::<_, axum::Error>(tx)
    });
    let fut = wagu_gateway::ws::connection::serve(
        Duplex {
            sink: Box::pin(sink),
            stream,
        },
        state,
    );
    // Every idle connection holds this future for its whole life: keep rare, large futures
    // (joining, the frame handler, refusals, pings, the close and the write batch) boxed so it
    // stays small. Measured 792 bytes in the test build (808 before the socket moved into the
    // wire a session may write to, and `serve` stopped being an `async fn` whose future kept a
    // slot for the socket it was given; 776 while the loop was a `select!` over
    // split halves with an inline `Interval`; 1,040 with the write batch and the rare
    // branches inline; 1,048 when the state became one pointer, 2,752 when each connection held
    // a copy of the whole state; 3,592 with the frame handler inline, 5,104 before boxing the
    // joins).
    let size = std::mem::size_of_val(&fut);
    eprintln!("the connection future holds {size} bytes");
    assert!(size <= 900, "the connection future grew to {size} bytes");
    let task = tokio::spawn(fut);

    let send = |text: String| to_server.send(Ok(Message::Text(text.into()))).unwrap();
    send(r#"{"type":"hello","id":1,"protocol":1}"#.into());
    assert!(matches!(
        next(&mut from_server).await,
        ServerMessage::Ack { .. }
    ));
    send(format!(
        r#"{{"type":"join","id":2,"share":"{}","name":"Channel","host_key":"{}"}}"#,
        created.share.0, created.host_key.0
    ));
    assert!(matches!(
        next(&mut from_server).await,
        ServerMessage::Welcome { .. }
    ));
    assert!(matches!(
        next(&mut from_server).await,
        ServerMessage::Ack { .. }
    ));
    send(r#"{"type":"chat","id":3,"text":"no sockets here"}"#.into());
    assert!(matches!(
        next(&mut from_server).await,
        ServerMessage::Chat { .. }
    ));
    assert!(matches!(
        next(&mut from_server).await,
        ServerMessage::Ack { .. }
    ));
    send(r#"{"type":"leave","id":4}"#.into());
    // The participant's own `participant_left` event, then the ack, then the close.
    loop {
        match tokio::time::timeout(Duration::from_secs(5), from_server.recv())
            .await
            .unwrap()
        {
            Some(Message::Close(Some(f))) => {
                assert_eq!(f.code, wagu_proto::close::LEFT);
                break;
            }
            Some(_) => continue,
            None => panic!("closed without a close frame"),
        }
    }
    drop(to_server);
    task.await.unwrap();
}
