//! Every RPC of the pinned API as the fuzzer sees it: its gRPC path, whether the server
//! streams, how to make a structure-aware request (`arbitrary` over the generated type), how
//! to check a reply message, and how to show a request in a finding.

use arbitrary::{Arbitrary, Unstructured};
use cricket_harness::cri;
use prost::Message;

pub struct Rpc {
    pub service: &'static str,
    pub method: &'static str,
    /// Full gRPC path, `/runtime.v1.RuntimeService/Version`.
    pub path: &'static str,
    pub streaming: bool,
    /// A structure-aware request, encoded.
    pub generate: fn(&mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>>,
    /// Whether `bytes` is a well-formed reply message of this RPC.
    pub check_reply: fn(&[u8]) -> Result<(), prost::DecodeError>,
    /// The request decoded for a report, or why it does not decode.
    pub show_request: fn(&[u8]) -> String,
}

/// One entry per RPC of `cricket_proto::for_each_rpc!` (the API's single RPC list).
macro_rules! rpcs {
    ($($svc:ident $method:ident $snake:ident $kind:ident $req:ident $resp:ident;)+) => {
        /// A static, so every reference to an entry is the same address.
        pub static RPCS: &[Rpc] = &[$(Rpc {
            service: stringify!($svc),
            method: stringify!($method),
            path: concat!("/runtime.v1.", stringify!($svc), "/", stringify!($method)),
            streaming: rpcs!(@stream $kind),
            generate: |u| cri::$req::arbitrary(u).map(|m| m.encode_to_vec()),
            check_reply: |b| cri::$resp::decode(b).map(drop),
            show_request: |b| match cri::$req::decode(b) {
                Ok(m) => {
                    let mut t = format!("{m:?}");
                    if t.len() > 4096 {
                        let mut cut = 4096;
                        while !t.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        t.truncate(cut);
                        t.push('…');
                    }
                    t
                }
                Err(e) => format!("({} bytes that do not decode as {}: {e})", b.len(), stringify!($req)),
            },
        }),+];
    };
    (@stream unary) => { false };
    (@stream stream) => { true };
}

cricket_proto::for_each_rpc!(rpcs);

pub fn by_method(method: &str) -> Option<&'static Rpc> {
    RPCS.iter().find(|r| r.method == method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_covers_every_rpc_of_the_api() {
        let ours: Vec<(&str, &str)> = RPCS.iter().map(|r| (r.service, r.method)).collect();
        assert_eq!(ours, cricket_harness::cri_rpcs().to_vec());
        let mut u = Unstructured::new(&[7u8; 4096]);
        for r in RPCS {
            let bytes = (r.generate)(&mut u).expect("generates");
            assert!(
                !(r.show_request)(&bytes).contains("do not decode"),
                "{}",
                r.method
            );
        }
    }
}
