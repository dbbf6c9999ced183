//! An IPv4 block and bridge name per test stack, so that stacks running in
//! parallel never share a subnet or a bridge: a /20 out of 10.64.0.0/10,
//! claimed by creating a file under /tmp (O_EXCL) and skipped when the host
//! routes any of it. Released in Drop.

use std::net::Ipv4Addr;
use std::path::PathBuf;

const CLAIMS: &str = "/tmp/berth-test-netblocks";

pub struct NetBlock {
    /// The block's first address; it spans 16 /24s.
    base: Ipv4Addr,
    claim: PathBuf,
}

fn routed() -> Vec<(u32, u32)> {
    std::fs::read_to_string("/proc/net/route")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dst = u32::from_be(u32::from_str_radix(f.get(1)?, 16).ok()?);
            let mask = u32::from_be(u32::from_str_radix(f.get(7)?, 16).ok()?);
            (mask != 0).then_some((dst, mask))
        })
        .collect()
}

impl NetBlock {
    pub fn claim() -> NetBlock {
        std::fs::create_dir_all(CLAIMS).expect("claims dir");
        let routes = routed();
        // 10.64.0.0/10 in /20s: 1024 blocks, tried from a random start.
        let start: u32 = rand_u32() % 1024;
        for i in 0..1024 {
            let n = (start + i) % 1024;
            let base = u32::from(Ipv4Addr::new(10, 64, 0, 0)) + (n << 12);
            let mask = !0u32 << 12;
            if routes
                .iter()
                .any(|(d, m)| (d & m & mask) == (base & m & mask))
            {
                continue;
            }
            let claim = PathBuf::from(CLAIMS).join(n.to_string());
            if std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&claim)
                .is_ok()
            {
                return NetBlock {
                    base: Ipv4Addr::from(base),
                    claim,
                };
            }
        }
        panic!("no free test network block in 10.64.0.0/10");
    }

    /// The i-th /24 of the block (0 is the default bridge's).
    pub fn subnet(&self, i: u8) -> String {
        let o = self.base.octets();
        format!("{}.{}.{}.0/24", o[0], o[1], o[2] + (i % 16))
    }

    /// The i-th IPv6 /64 of the block: unique to it as its IPv4 /24s are.
    pub fn subnet6(&self, i: u8) -> String {
        let o = self.base.octets();
        format!("fd00:{:x}:{:x}:{:x}::/64", o[1], o[2], i)
    }

    /// A bridge name unique to the block, with a suffix (≤ 15 chars).
    pub fn bridge(&self, suffix: &str) -> String {
        let o = self.base.octets();
        format!("bt{}x{}{suffix}", o[1], o[2])
    }

    pub fn default_bridge_json(&self) -> (String, String, serde_json::Value) {
        let o = self.base.octets();
        let bip = format!("{}.{}.{}.1/24", o[0], o[1], o[2]);
        let pools =
            serde_json::json!([{"base": format!("{}.{}.{}.0/20", o[0], o[1], o[2]), "size": 24}]);
        (self.bridge("d"), bip, pools)
    }
}

impl Drop for NetBlock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.claim);
    }
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().wrapping_mul(2_654_435_761)
}
