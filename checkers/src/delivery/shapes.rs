//! The values of the delivery checker's ops (docs/history.md): a message as a bare id or an
//! object, a consume's deliveries as a list or one message alone. A hand scan reads the plain
//! shapes workloads write, and serde everything else, so that both always agree (the tests
//! below hold them to it).

use super::*;

/// A message as a history names it: a bare id, or an object with some of these fields.
#[derive(Debug, Default)]
pub(super) struct MsgRef<'a> {
    pub(super) id: Option<Id<'a>>,
    pub(super) partition: Option<Id<'a>>,
    pub(super) offset: Option<u64>,
    pub(super) delivery: Option<u64>,
    pub(super) group: Option<Id<'a>>,
}

pub(super) struct MsgRefVisitor;

impl<'de> Visitor<'de> for MsgRefVisitor {
    type Value = MsgRef<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a message id or an object like {\"id\": ..., \"partition\": ..., \"offset\": ...}",
        )
    }
    fn visit_unit<E: de::Error>(self) -> Result<MsgRef<'de>, E> {
        Ok(MsgRef::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<MsgRef<'de>, E> {
        Ok(MsgRef::default())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<MsgRef<'de>, E> {
        Ok(MsgRef {
            id: Some(Id::Int(v)),
            ..MsgRef::default()
        })
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<MsgRef<'de>, E> {
        Ok(MsgRef {
            id: Some(Id::deserialize(de::value::I64Deserializer::new(v))?),
            ..MsgRef::default()
        })
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<MsgRef<'de>, E> {
        Ok(MsgRef {
            id: Some(Id::deserialize(de::value::BorrowedStrDeserializer::new(v))?),
            ..MsgRef::default()
        })
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<MsgRef<'de>, E> {
        Ok(MsgRef {
            id: Some(Id::deserialize(de::value::StringDeserializer::new(
                v.to_string(),
            ))?),
            ..MsgRef::default()
        })
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<MsgRef<'de>, A::Error> {
        let mut r = MsgRef::default();
        while let Some(k) = m.next_key::<Cow<'de, str>>()? {
            match &*k {
                "id" => r.id = Some(m.next_value()?),
                "partition" => r.partition = m.next_value()?,
                "offset" => r.offset = m.next_value()?,
                "delivery" => r.delivery = m.next_value()?,
                "group" => r.group = m.next_value()?,
                _ => {
                    m.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(r)
    }
}

impl<'de> Deserialize<'de> for MsgRef<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MsgRefVisitor)
    }
}

/// A consume's deliveries: a list, one message alone, or nothing (`null`).
pub(super) struct Deliveries<'a>(pub(super) Vec<MsgRef<'a>>);

impl<'de> Deserialize<'de> for Deliveries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Deliveries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of messages, one message, or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Deliveries<'de>, E> {
                Ok(Deliveries(Vec::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Deliveries<'de>, E> {
                Ok(Deliveries(Vec::new()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<Deliveries<'de>, A::Error> {
                let mut v = Vec::with_capacity(s.size_hint().unwrap_or(8).min(1024));
                while let Some(m) = s.next_element::<MsgRef<'de>>()? {
                    v.push(m);
                }
                Ok(Deliveries(v))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> Result<Deliveries<'de>, A::Error> {
                Ok(Deliveries(vec![MsgRefVisitor.visit_map(m)?]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Deliveries<'de>, E> {
                Ok(Deliveries(vec![MsgRefVisitor.visit_u64(v)?]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Deliveries<'de>, E> {
                Ok(Deliveries(vec![MsgRefVisitor.visit_i64(v)?]))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Deliveries<'de>, E> {
                Ok(Deliveries(vec![MsgRefVisitor.visit_borrowed_str(v)?]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Deliveries<'de>, E> {
                Ok(Deliveries(vec![MsgRefVisitor.visit_str(v)?]))
            }
        }
        d.deserialize_any(V)
    }
}

/// The value as a message, or as a list of messages: a hand scan for the plain shapes workloads
/// write (integer or escape-free string ids, integer offsets), serde for everything else, so
/// both always agree.
pub(super) fn parse_msg<'a>(v: ValueRef<'a>) -> Result<MsgRef<'a>, serde_json::Error> {
    if let ValueRef::Json(text) = v {
        let mut sc = Scan::new(text);
        if let Some(m) = scan_msg(&mut sc) {
            if sc.at_end() {
                return Ok(m);
            }
        }
    }
    v.parse()
}

pub(super) fn parse_deliveries<'a>(v: ValueRef<'a>) -> Result<Deliveries<'a>, serde_json::Error> {
    if let ValueRef::Json(text) = v {
        let mut sc = Scan::new(text);
        if sc.peek() == Some(b'[') {
            let mut list = Vec::new();
            let scanned = (|| {
                sc.eat(b'[')?;
                if sc.peek() == Some(b']') {
                    sc.eat(b']')?;
                } else {
                    loop {
                        list.push(scan_msg(&mut sc)?);
                        match sc.peek()? {
                            b',' => sc.eat(b',')?,
                            b']' => {
                                sc.eat(b']')?;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                sc.at_end().then_some(())
            })();
            if scanned.is_some() {
                return Ok(Deliveries(list));
            }
        }
    }
    v.parse()
}

/// An id the hand scan accepts: a plain non-negative integer or an escape-free string.
pub(super) fn scan_id<'a>(sc: &mut Scan<'a>) -> Option<Id<'a>> {
    if sc.peek()? == b'"' {
        Some(Id::from_key(sc.plain_str()?))
    } else {
        Some(Id::Int(sc.uint()?))
    }
}

pub(super) fn scan_msg<'a>(sc: &mut Scan<'a>) -> Option<MsgRef<'a>> {
    let mut m = MsgRef::default();
    match sc.peek()? {
        b'{' => {}
        b'n' => {
            sc.literal(b"null")?;
            return Some(m);
        }
        _ => {
            m.id = Some(scan_id(sc)?);
            return Some(m);
        }
    }
    sc.eat(b'{')?;
    if sc.peek()? == b'}' {
        sc.eat(b'}')?;
        return Some(m);
    }
    loop {
        // The names this reads, compared in place; any other name is scanned.
        sc.ws();
        let field = if sc.exactly(b"\"id\"") {
            Field::Id
        } else if sc.exactly(b"\"partition\"") {
            Field::Partition
        } else if sc.exactly(b"\"offset\"") {
            Field::Offset
        } else {
            match sc.plain_str()? {
                "id" => Field::Id,
                "partition" => Field::Partition,
                "offset" => Field::Offset,
                "delivery" => Field::Delivery,
                "group" => Field::Group,
                _ => Field::Other,
            }
        };
        sc.eat(b':')?;
        let is_null = sc.peek()? == b'n';
        if is_null && field != Field::Id {
            sc.literal(b"null")?;
            match field {
                Field::Partition => m.partition = None,
                Field::Offset => m.offset = None,
                Field::Delivery => m.delivery = None,
                Field::Group => m.group = None,
                Field::Id | Field::Other => {}
            }
        } else {
            match field {
                Field::Id => m.id = Some(scan_id(sc)?),
                Field::Partition => m.partition = Some(scan_id(sc)?),
                Field::Offset => m.offset = Some(sc.uint()?),
                Field::Delivery => m.delivery = Some(sc.uint()?),
                Field::Group => m.group = Some(scan_id(sc)?),
                Field::Other => {
                    sc.value(1)?;
                }
            }
        }
        match sc.peek()? {
            b',' => sc.eat(b',')?,
            b'}' => {
                sc.eat(b'}')?;
                return Some(m);
            }
            _ => return None,
        }
    }
}

/// The fields of a message object the hand scan reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    Partition,
    Offset,
    Delivery,
    Group,
    Other,
}

pub(super) const PRODUCE_SHAPE: &str =
    "{\"id\": ID, \"partition\"?: P, \"offset\"?: O} or a bare ID";
pub(super) const CONSUME_SHAPE: &str =
    "a list of {\"id\": ID, \"partition\"?: P, \"offset\"?: O, \"delivery\"?: N} or bare IDs";
pub(super) const ACK_SHAPE: &str = "{\"id\": ID} or a bare ID";
pub(super) const OFFSET_SHAPE: &str = "{\"group\": G, \"partition\": P, \"offset\": O}";

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand scan of message values agrees with serde, or leaves the value to serde.
    #[test]
    fn message_scan_agrees_with_serde() {
        let cases = [
            "7",
            "\"m-1\"",
            "\"7\"",
            "null",
            "{}",
            "{\"id\":1,\"partition\":\"p0\",\"offset\":3,\"delivery\":2,\"x\":[1,{\"y\":null}]}",
            "{\"id\":1,\"partition\":null,\"offset\":null}",
            "{\"group\":\"g\",\"partition\":0,\"offset\":5}",
            "{\"id\":1,\"id\":2}",
            "{\"id\":null}",
            "{\"id\":-1}",
            "{\"id\":1,\"offset\":1.5}",
            "{\"id\":\"a\\\"b\"}",
            "[1,2]",
            "true",
        ];
        for text in cases {
            let scanned = {
                let mut sc = Scan::new(text);
                scan_msg(&mut sc).filter(|_| sc.at_end())
            };
            let slow: Result<MsgRef, _> = serde_json::from_str(text);
            match (scanned, slow) {
                (Some(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{text}"),
                (Some(a), Err(e)) => panic!("{text}: scanned {a:?}, serde says {e}"),
                (None, _) => {}
            }
            let v = ValueRef::Json(text);
            assert_eq!(
                format!("{:?}", parse_msg(v).map_err(|e| e.to_string())),
                format!("{:?}", v.parse::<MsgRef>().map_err(|e| e.to_string())),
                "{text}"
            );
        }
        for text in [
            "[]",
            "[1,\"a\",{\"id\":3}]",
            "[1,]",
            "[{\"id\":1.5}]",
            "{\"id\":1}",
            "null",
        ] {
            let v = ValueRef::Json(text);
            let fast = parse_deliveries(v)
                .map(|d| format!("{:?}", d.0))
                .map_err(|e| e.to_string());
            let slow = v
                .parse::<Deliveries>()
                .map(|d| format!("{:?}", d.0))
                .map_err(|e| e.to_string());
            assert_eq!(fast, slow, "{text}");
        }
    }
}
