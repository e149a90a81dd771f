//! A scripted SMTP peer in-process: answers the few commands a mailer sends, and can stall
//! after the message or delay its ACKs the way busy mail servers do. Shared by the failure
//! tests and the throughput benchmark.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the peer behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Accepts every message.
    Accept,
    /// Accepts every message and asks the kernel to delay its ACKs after each read
    /// (`TCP_QUICKACK` off), as a server does once a conversation is under way.
    AcceptWithDelayedAcks,
    /// Reads the message and never replies to its final dot.
    StallAfterData,
}

/// A peer on a free loopback port; it stops when dropped.
pub struct ScriptedPeer {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl ScriptedPeer {
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (counter, opened) = (accepted.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                opened.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(converse(stream, behaviour, counter.clone()));
            }
        });
        Self {
            port,
            accepted,
            connections,
            task,
        }
    }

    /// `smtp://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Messages accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections opened to the peer so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for ScriptedPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn converse(stream: TcpStream, behaviour: Behaviour, accepted: Arc<AtomicUsize>) {
    let _ = converse_until_error(stream, behaviour, accepted).await;
}

async fn converse_until_error(
    stream: TcpStream,
    behaviour: Behaviour,
    accepted: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    stream
        .get_mut()
        .write_all(b"220 peer.test ESMTP\r\n")
        .await?;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        delay_acks_if_asked(&stream, behaviour);
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250-peer.test\r\n250 8BITMIME\r\n",
            "QUIT" => {
                stream.get_mut().write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            "DATA" => {
                stream.get_mut().write_all(b"354 go ahead\r\n").await?;
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    delay_acks_if_asked(&stream, behaviour);
                    if line == ".\r\n" {
                        break;
                    }
                }
                if behaviour == Behaviour::StallAfterData {
                    std::future::pending::<()>().await;
                }
                accepted.fetch_add(1, Ordering::Relaxed);
                b"250 2.0.0 queued\r\n"
            }
            _ => b"250 OK\r\n",
        };
        stream.get_mut().write_all(reply).await?;
    }
}

fn delay_acks_if_asked(stream: &BufReader<TcpStream>, behaviour: Behaviour) {
    if behaviour == Behaviour::AcceptWithDelayedAcks {
        // Not permanent in the kernel: set again after every read.
        let _ = socket2::SockRef::from(stream.get_ref()).set_tcp_quickack(false);
    }
}
