//! The harness's real components start on free ports, answer, and are gone after drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::nodes::{Anvil, Speculos, Surfnet};

async fn rpc(url: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    reqwest::Client::new().post(url).json(&body).send().await.unwrap().json::<Value>().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_starts_answers_and_stops() {
    let anvil = Anvil::start();
    let r = rpc(&anvil.url, "eth_chainId", json!([])).await;
    assert_eq!(r["result"], "0x7a69");
    let port = anvil.port;
    drop(anvil);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surfnet_starts_answers_and_stops() {
    let node = Surfnet::start();
    assert_eq!(rpc(&node.url, "getHealth", json!([])).await["result"], "ok");
    let bh = rpc(&node.url, "getLatestBlockhash", json!([{"commitment": "confirmed"}])).await;
    let last_valid = bh["result"]["value"]["lastValidBlockHeight"].as_u64().unwrap();
    let height =
        rpc(&node.url, "getBlockHeight", json!([{"commitment": "confirmed"}])).await["result"].as_u64().unwrap();
    assert!(last_valid > height);
    let port = node.port;
    drop(node);
    std::thread::sleep(Duration::from_millis(100));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn speculos_runs_the_boilerplate_app_over_tcp() {
    let sp = Speculos::start(None);
    let mut s = TcpStream::connect(("127.0.0.1", sp.apdu_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // GET_APP_NAME (CLA 0xE0, INS 0x04) in the Speculos TCP framing.
    let apdu = [0xE0u8, 0x04, 0x00, 0x00, 0x00];
    s.write_all(&(apdu.len() as u32).to_be_bytes()).unwrap();
    s.write_all(&apdu).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut data = vec![0u8; u32::from_be_bytes(len) as usize + 2];
    s.read_exact(&mut data).unwrap();
    let (body, sw) = data.split_at(data.len() - 2);
    assert_eq!(sw, [0x90, 0x00]);
    assert_eq!(String::from_utf8_lossy(body), "Boilerplate");
    let port = sp.apdu_port;
    drop(s);
    drop(sp);
    std::thread::sleep(Duration::from_millis(200));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
