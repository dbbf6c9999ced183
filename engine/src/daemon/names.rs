//! Container names: given ones checked as Docker checks them, or generated
//! `adjective_surname` pairs as Docker makes them.

use rand::seq::IndexedRandom;

const LEFT: &[&str] = &[
    "admiring",
    "affectionate",
    "agitated",
    "amazing",
    "angry",
    "awesome",
    "blissful",
    "bold",
    "boring",
    "brave",
    "busy",
    "charming",
    "clever",
    "compassionate",
    "competent",
    "confident",
    "cool",
    "cranky",
    "crazy",
    "dazzling",
    "determined",
    "distracted",
    "dreamy",
    "eager",
    "ecstatic",
    "elastic",
    "elated",
    "elegant",
    "eloquent",
    "epic",
    "exciting",
    "fervent",
    "festive",
    "flamboyant",
    "focused",
    "friendly",
    "frosty",
    "funny",
    "gallant",
    "gifted",
    "goofy",
    "gracious",
    "great",
    "happy",
    "hardcore",
    "heuristic",
    "hopeful",
    "hungry",
    "infallible",
    "inspiring",
    "intelligent",
    "interesting",
    "jolly",
    "jovial",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "magical",
    "modest",
    "musing",
    "mystifying",
    "naughty",
    "nervous",
    "nice",
    "nifty",
    "nostalgic",
    "objective",
    "optimistic",
    "peaceful",
    "pedantic",
    "pensive",
    "practical",
    "priceless",
    "quirky",
    "quizzical",
    "recursing",
    "relaxed",
    "reverent",
    "romantic",
    "sad",
    "serene",
    "sharp",
    "silly",
    "sleepy",
    "stoic",
    "strange",
    "stupefied",
    "suspicious",
    "sweet",
    "tender",
    "thirsty",
    "trusting",
    "unruffled",
    "upbeat",
    "vibrant",
    "vigilant",
    "vigorous",
    "wizardly",
    "wonderful",
    "xenodochial",
    "youthful",
    "zealous",
    "zen",
];

const RIGHT: &[&str] = &[
    "agnesi",
    "allen",
    "almeida",
    "archimedes",
    "ardinghelli",
    "babbage",
    "banach",
    "bardeen",
    "bartik",
    "bassi",
    "bell",
    "benz",
    "bhabha",
    "bohr",
    "booth",
    "borg",
    "bose",
    "brahmagupta",
    "brown",
    "burnell",
    "cannon",
    "carson",
    "cartwright",
    "cerf",
    "chandrasekhar",
    "chaplygin",
    "clarke",
    "cohen",
    "colden",
    "cori",
    "cray",
    "curie",
    "darwin",
    "davinci",
    "dijkstra",
    "dirac",
    "driscoll",
    "dubinsky",
    "easley",
    "einstein",
    "elion",
    "engelbart",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gates",
    "goldberg",
    "goodall",
    "gould",
    "greider",
    "hamilton",
    "haslett",
    "hawking",
    "heisenberg",
    "hermann",
    "hodgkin",
    "hoover",
    "hopper",
    "hugle",
    "hypatia",
    "jackson",
    "jang",
    "jennings",
    "jepsen",
    "johnson",
    "joliot",
    "jones",
    "kalam",
    "keldysh",
    "kepler",
    "khorana",
    "kilby",
    "knuth",
    "kowalevski",
    "lamarr",
    "lamport",
    "leakey",
    "leavitt",
    "lehmann",
    "lewin",
    "liskov",
    "lovelace",
    "lumiere",
    "mahavira",
    "margulis",
    "matsumoto",
    "maxwell",
    "mayer",
    "mccarthy",
    "mcclintock",
    "meitner",
    "mendel",
    "mendeleev",
    "merkle",
    "mirzakhani",
    "montalcini",
    "moore",
    "morse",
    "moser",
    "napier",
    "nash",
    "neumann",
    "newton",
    "nightingale",
    "nobel",
    "noether",
    "northcutt",
    "noyce",
    "panini",
    "pare",
    "pascal",
    "pasteur",
    "payne",
    "perlman",
    "pike",
    "poincare",
    "poitras",
    "ptolemy",
    "raman",
    "ramanujan",
    "ride",
    "ritchie",
    "robinson",
    "roentgen",
    "rosalind",
    "rubin",
    "saha",
    "sammet",
    "shamir",
    "shannon",
    "shaw",
    "shirley",
    "shockley",
    "sinoussi",
    "snyder",
    "spence",
    "stallman",
    "stonebraker",
    "swanson",
    "swartz",
    "swirles",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "varahamihira",
    "villani",
    "visvesvaraya",
    "volhard",
    "wescoff",
    "wiles",
    "williams",
    "wilson",
    "wing",
    "wozniak",
    "wright",
    "wu",
    "yalow",
    "yonath",
    "zhukovsky",
];

pub fn generate(retry: usize) -> String {
    let mut rng = rand::rng();
    let l = LEFT.choose(&mut rng).copied().unwrap_or("berth");
    let r = RIGHT.choose(&mut rng).copied().unwrap_or("container");
    if retry > 0 {
        format!("{l}_{r}{}", rand::random::<u8>() % 10)
    } else {
        format!("{l}_{r}")
    }
}

/// Docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, an optional leading slash.
pub fn validate(name: &str) -> Result<String, String> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut chars = n.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {
            n.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        }
        _ => false,
    };
    if ok {
        Ok(n.to_string())
    } else {
        Err(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        ))
    }
}

/// A network's name: any text a person would type (dockerd takes spaces
/// and punctuation), but never a control character, a `/` (it could not
/// be named in a URL path) or surrounding blanks. Names never become
/// paths; this keeps them printable and addressable.
pub fn validate_network_name(name: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("invalid network name {name:?}: {why}"));
    if name.trim().is_empty() {
        return bad("it is empty");
    }
    if name.trim() != name {
        return bad("it starts or ends with a blank");
    }
    if name.len() > 255 {
        return bad("it is longer than 255 bytes");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("it contains a control character");
    }
    if name.contains('/') || name == "." || name == ".." {
        return bad("it contains '/' or is '.' or '..'");
    }
    Ok(name.to_string())
}

/// A network alias is a name other containers resolve. dockerd takes any
/// string (compose names a service `--test-service`, and its aliases with
/// it); the resolver serves those that are DNS names
/// (`netsetup::dns_register`). Only what cannot be a name at all is
/// refused.
pub fn validate_alias(alias: &str) -> Result<(), String> {
    if alias.is_empty() || alias.chars().any(char::is_control) {
        Err(format!("invalid network alias {alias:?}"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn network_names_and_aliases() {
        use super::{validate_alias, validate_network_name};
        assert!(validate_network_name("my net (test)").is_ok());
        for bad in [
            "",
            " x",
            "/../../../../../../etc/cron.d/x",
            "a/b",
            "..",
            "a\nb",
            "a\0b",
        ] {
            assert!(validate_network_name(bad).is_err(), "{bad:?}");
        }
        for good in ["web", "web_1.db-x", "--test-service", "a b", "é"] {
            assert!(validate_alias(good).is_ok(), "{good:?}");
        }
        for bad in ["", "evil\n0000 6.6.6.6  injected-name", "a\0b"] {
            assert!(validate_alias(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(super::validate("/web-1").unwrap(), "web-1");
        assert!(super::validate("-x").is_err());
        assert!(super::validate("a").is_err());
        assert!(super::validate("a b").is_err());
        assert!(super::generate(0).contains('_'));
    }
}
