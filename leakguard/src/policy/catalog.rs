//! The built-in catalog of identity headers, from public code that reads them, operator and
//! vendor documentation and the reporting on the 2012 and 2014 leaks
//! (`shared/reference/identity-headers.md`). Every catalog header without a rule of its
//! own gets `scan.builtin_catalog`'s action (`count` by default).

/// What a header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The subscriber's phone number.
    Msisdn,
    /// The SIM's IMSI.
    Imsi,
    /// A stable per-subscriber token usable to track across sites.
    TrackingId,
    /// A handset identity (IMEI and the like).
    DeviceId,
    /// Subscriber profile or account data.
    Profile,
}

impl Kind {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Msisdn => "msisdn",
            Self::Imsi => "imsi",
            Self::TrackingId => "tracking-id",
            Self::DeviceId => "device-id",
            Self::Profile => "profile",
        }
    }
}

pub struct Entry {
    pub header: &'static str,
    pub kind: Kind,
    pub source: &'static str,
}

const fn e(header: &'static str, kind: Kind, source: &'static str) -> Entry {
    Entry {
        header,
        kind,
        source,
    }
}

use Kind::{DeviceId, Imsi, Msisdn, Profile, TrackingId};

pub static CATALOG: &[Entry] = &[
    e(
        "X-MSISDN",
        Msisdn,
        "many operators; generic enrichment appliances",
    ),
    e("MSISDN", Msisdn, "several operators (the bare name)"),
    e(
        "X-Up-Calling-Line-ID",
        Msisdn,
        "Openwave / Phone.com UP.Link WAP gateways",
    ),
    e("X-Nokia-MSISDN", Msisdn, "Nokia WAP gateways"),
    e(
        "X-WAP-Network-Client-MSISDN",
        Msisdn,
        "WAP Forum / OMA enrichment header",
    ),
    e("X-WAP-MSISDN", Msisdn, "gateway variants"),
    e("X-H3G-MSISDN", Msisdn, "Hutchison 3 networks"),
    e("X-MSP-MSISDN", Msisdn, "operator proxies"),
    e("X-FH-MSISDN", Msisdn, "operator proxies"),
    e("X-WTE-MSISDN", Msisdn, "operator proxies"),
    e("X-BAM-MSISDN", Msisdn, "operator proxies"),
    e(
        "User-Identity-Forward-MSISDN",
        Msisdn,
        "enrichment appliances",
    ),
    e("MScope-MSISDN", Msisdn, "enrichment appliances"),
    e("I-MSISDN", Msisdn, "code that checks all MSISDN headers"),
    e("IMISDN", Msisdn, "code that checks all MSISDN headers"),
    e("Y-MSISDN", Msisdn, "code that checks all MSISDN headers"),
    e("X-HTS-CLID", Msisdn, "operator proxies (calling line id)"),
    e(
        "X-Network-Info",
        Msisdn,
        "Openwave-style bearer, number and address list",
    ),
    e(
        "X-Up-Subno",
        Msisdn,
        "Openwave (CDMA networks) subscriber id",
    ),
    e(
        "X-Up-Ch-Msisdn",
        Msisdn,
        "Openwave variant (a Brazilian operator)",
    ),
    e(
        "X-UpVodacomGW-SubID",
        Msisdn,
        "a South African operator's gateway",
    ),
    e(
        "X-Drutt-Portal-User-MSISDN",
        Msisdn,
        "Drutt mobile portal platform",
    ),
    e(
        "X-Wap-Sesiones3g-Mdn",
        Msisdn,
        "a Spanish-language operator's 3G session proxy",
    ),
    e("X-H3G-Party-User-ID", Msisdn, "Hutchison 3 networks"),
    e("X-H3G-Party-ID", Msisdn, "Hutchison 3 networks"),
    e(
        "X-Jinny.CID",
        Msisdn,
        "Jinny messaging gateway (calling id)",
    ),
    e("ClientID", Msisdn, "a US CDMA operator's proxy"),
    e(
        "X-Ztgo-Beareraddress",
        Msisdn,
        "ZTE gateways (bearer address)",
    ),
    e(
        "X-Subscriber-Info",
        Msisdn,
        "enrichment appliances (list including the number)",
    ),
    e("X-IMSI", Imsi, "operator proxies"),
    e("X-Nokia-IMSI", Imsi, "Nokia WAP gateways"),
    e(
        "X-UIDH",
        TrackingId,
        "Verizon Unique Identifier Header (2012-2016)",
    ),
    e("X-ACR", TrackingId, "AT&T Anonymous Customer Reference"),
    e("X-VF-ACR", TrackingId, "Vodafone ACR"),
    e("X-DCMGUID", TrackingId, "NTT Docomo i-mode user id"),
    e("X-JPhone-UID", TrackingId, "SoftBank (ex J-Phone) user id"),
    e("X-EM-UID", TrackingId, "EMOBILE user id"),
    e(
        "X-Nokia-Alias",
        TrackingId,
        "Nokia gateways: per-subscriber alias",
    ),
    e("X-Up-NAI", TrackingId, "Openwave network access identifier"),
    e("X-Amobee-1", TrackingId, "an ad partner's encrypted number"),
    e("TM_user-id", TrackingId, "a Spanish operator"),
    e("X-WAP-KID", TrackingId, "seen by the Access Now study"),
    e("X-Piper-ID", TrackingId, "seen by the Access Now study"),
    e("X-FCCKV2", TrackingId, "seen by the Access Now study"),
    e("X-Saucer", TrackingId, "seen by the Access Now study"),
    e(
        "X-AvantGo-UserID",
        TrackingId,
        "AvantGo mobile browser/proxy",
    ),
    e("DeviceID", DeviceId, "Chinese operators' WAP gateways"),
    e(
        "X-Up-3GPP-IMEISV",
        DeviceId,
        "Openwave: the handset's IMEISV",
    ),
    e(
        "X-AvantGo-DeviceID",
        DeviceId,
        "AvantGo mobile browser/proxy",
    ),
    e("X-H3G-ACCT-DATA", Profile, "Hutchison 3 account data"),
    e(
        "X-Up-Subscriber-COS",
        Profile,
        "Openwave subscriber class of service",
    ),
    e(
        "X-OPWV-DDM-Identity",
        Profile,
        "Openwave subscriber identity",
    ),
    e(
        "X-OPWV-DDM-Subscriber",
        Profile,
        "Openwave subscriber profile",
    ),
    e(
        "X-Up-3GPP-SGSN-MCC-MNC",
        Profile,
        "Openwave: the serving network",
    ),
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::CATALOG;

    #[test]
    fn catalog_names_are_valid_distinct_keys() {
        assert!(CATALOG.len() >= 25);
        let mut seen = HashSet::new();
        for e in CATALOG {
            let key = leakguard_common::name::key(e.header.as_bytes())
                .unwrap_or_else(|err| panic!("{}: {err:?}", e.header));
            assert!(seen.insert(key), "{} twice (after folding)", e.header);
        }
    }
}
