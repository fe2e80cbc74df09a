//! Findings: what broke, deduplicated by oracle + RPC + answer class, minimised by re-sending
//! smaller inputs, saved as replay files (`cricket fuzz --replay FILE`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::mutate;
use super::rpcs;

pub const FINDING_FORMAT: &str = "cricket.fuzz-finding/v1";

/// Which oracle a finding broke.
pub mod oracle {
    /// Every reply is a well-formed message or gRPC status; no reset stream or connection.
    pub const REPLY: &str = "reply";
    /// Every call is answered within its deadline.
    pub const HANG: &str = "hang";
    /// The runtime stays up and answers Version after every batch.
    pub const ALIVE: &str = "alive";
    /// No object created by fuzz input survives cleanup.
    pub const LEAK: &str = "leak";
    /// Nothing appears on the host outside the runtime's directories.
    pub const HOST: &str = "host";
    /// Memory and open descriptors of the runtime stay bounded.
    pub const RESOURCES: &str = "resources";

    /// Every oracle, gravest first: a run with several findings fails with the check of the
    /// gravest, so an expectation pins the one that matters.
    pub const ALL: &[&str] = &[ALIVE, HANG, REPLY, LEAK, RESOURCES, HOST];

    /// The check id a finding of `oracle` fails with: `fuzz.<oracle>`.
    pub fn check(oracle: &str) -> &'static str {
        match oracle {
            REPLY => "fuzz.reply",
            HANG => "fuzz.hang",
            ALIVE => "fuzz.alive",
            LEAK => "fuzz.leak",
            HOST => "fuzz.host",
            RESOURCES => "fuzz.resources",
            _ => "fuzz.finding",
        }
    }

    /// The check of the gravest of several findings' oracles.
    pub fn gravest<'a>(oracles: impl IntoIterator<Item = &'a str>) -> &'static str {
        oracles
            .into_iter()
            .min_by_key(|o| ALL.iter().position(|a| a == o).unwrap_or(usize::MAX))
            .map_or("fuzz.finding", check)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub format: String,
    pub oracle: String,
    /// RPC method (`Version`), or empty for run-wide oracles.
    pub rpc: String,
    /// The answer class (`reset`, `hang`, `status 13`…) or what was seen.
    pub class: String,
    pub detail: String,
    /// The request body as sent, gRPC frame included, in hex.
    pub body_hex: String,
    /// The request decoded, for reading.
    pub request: String,
    /// Bytes before minimisation.
    pub original_len: usize,
}

impl Finding {
    pub fn new(oracle: &str, rpc: &str, class: String, detail: String, body: &[u8]) -> Self {
        let request = rpcs::by_method(rpc)
            .map(|r| {
                let msg = body.get(5..).unwrap_or_default();
                (r.show_request)(msg)
            })
            .unwrap_or_default();
        Self {
            format: FINDING_FORMAT.into(),
            oracle: oracle.into(),
            rpc: rpc.into(),
            class,
            detail,
            body_hex: hex(body),
            request,
            original_len: body.len(),
        }
    }

    pub fn key(&self) -> (String, String, String) {
        (self.oracle.clone(), self.rpc.clone(), self.class.clone())
    }

    pub fn body(&self) -> Result<Vec<u8>, String> {
        unhex(&self.body_hex)
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read finding file {}: {e}", path.display()))?;
        let f: Finding = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a cricket fuzz finding: {e}", path.display()))?;
        if f.format != FINDING_FORMAT {
            return Err(format!(
                "{}: format {:?}, this cricket reads {FINDING_FORMAT:?}",
                path.display(),
                f.format
            ));
        }
        if rpcs::by_method(&f.rpc).is_none() {
            return Err(format!("{}: unknown RPC {:?}", path.display(), f.rpc));
        }
        f.body().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(f)
    }

    pub fn save(&self, dir: &Path, n: usize) -> Result<PathBuf, String> {
        let path = dir.join(format!(
            "fuzz-finding-{n}-{}-{}.json",
            self.oracle,
            if self.rpc.is_empty() {
                "run"
            } else {
                &self.rpc
            }
        ));
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("bad hex at {i}"))
        })
        .collect()
}

/// Smaller versions of a framed request, simplest first: each field of the message dropped,
/// each length-delimited field emptied or halved; the frame rebuilt around each.
pub fn smaller(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let well_framed = body.len() >= 5
        && body[0] == 0
        && u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize == body.len() - 5;
    let Some(fields) = body
        .get(5..)
        .filter(|_| well_framed)
        .and_then(mutate::parse)
    else {
        // A bent frame or message: cut the tail.
        if body.len() > 1 {
            out.push(body[..body.len() / 2].to_vec());
            out.push(body[..body.len() - 1].to_vec());
        }
        return out;
    };
    let framed = |fields: &[mutate::Field]| {
        let m = mutate::encode(fields);
        let mut f = vec![0];
        f.extend_from_slice(&(m.len() as u32).to_be_bytes());
        f.extend_from_slice(&m);
        f
    };
    for i in 0..fields.len() {
        let mut f = fields.clone();
        f.remove(i);
        out.push(framed(&f));
    }
    for i in 0..fields.len() {
        if let mutate::Value::Bytes(b) = &fields[i].value
            && !b.is_empty()
        {
            let mut f = fields.clone();
            // A nested message: its own smaller forms; a string: halved.
            if let Some(inner) = mutate::parse(b).filter(|x| !x.is_empty()) {
                for j in 0..inner.len() {
                    let mut g = inner.clone();
                    g.remove(j);
                    f[i].value = mutate::Value::Bytes(mutate::encode(&g));
                    out.push(framed(&f));
                }
            }
            f[i].value = mutate::Value::Bytes(b[..b.len() / 2].to_vec());
            out.push(framed(&f));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_oracle_fails_with_its_own_check() {
        for o in oracle::ALL {
            assert_eq!(oracle::check(o), format!("fuzz.{}", o.replace('-', "_")));
            assert!(cricket_harness::failure::is_check_id(oracle::check(o)));
        }
        assert_eq!(
            oracle::gravest([oracle::HOST, oracle::ALIVE, oracle::REPLY]),
            "fuzz.alive"
        );
        assert_eq!(oracle::gravest([]), "fuzz.finding");
    }

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        assert_eq!(unhex(&hex(&[0, 1, 0xff])), Ok(vec![0, 1, 0xff]));
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
    }

    #[test]
    fn smaller_inputs_are_smaller() {
        use prost::Message;
        let m = cricket_harness::cri::VersionRequest {
            version: "0123456789".into(),
        }
        .encode_to_vec();
        let mut body = vec![0];
        body.extend_from_slice(&(m.len() as u32).to_be_bytes());
        body.extend_from_slice(&m);
        let s = smaller(&body);
        assert!(!s.is_empty());
        assert!(s.iter().all(|x| x.len() < body.len()));
    }
}
