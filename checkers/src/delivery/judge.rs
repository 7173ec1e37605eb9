//! The end of a delivery history: what depends on all of it (lost, stranded, unexpected,
//! offset gaps), which kinds count under the guarantee, and the verdict with its summary.

use super::*;

impl StreamChecker for Delivery {
    fn name(&self) -> &str {
        "delivery"
    }

    fn event(&mut self, line: usize, e: &EventRef<'_>) -> Result<(), HistoryError> {
        let st = &mut self.st;
        match self.pairer.push(line, e, || st.invoke(line, e))? {
            Step::Nemesis => self.st.faults.push(e),
            Step::Invoked => {}
            Step::Completed(open) => self.st.complete(line, e, open)?,
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> CheckResult {
        for open in self.pairer.take_open() {
            match open.payload {
                Pending::Produce { msg } => self.st.produce_info(msg, open.invoke_index),
                Pending::Consume { .. } => {
                    self.st.first_uncertain_consume =
                        self.st.first_uncertain_consume.min(open.invoke_index);
                }
                _ => {}
            }
        }
        let reorders = std::mem::take(&mut self.st.reorders);
        for r in &reorders {
            self.st.reorder_finding(r, self.st.first_uncertain_consume);
        }
        let g = self.guarantee;
        let max_retries = self.max_retries;
        let mut st = self.st;

        let parts_in_use = st.parts.len();
        let drain_complete = st.drain_empty_all.is_some()
            || (parts_in_use > 0
                && (0..parts_in_use as u32).all(|p| st.drain_empty_parts.contains(&p)));
        let drain_at = st.drain_empty_all.unwrap_or(st.last_drain_empty);

        let mut lost_by_phase: BTreeMap<String, u64> = BTreeMap::new();
        let mut undecided_lost = 0u64;
        let mut undecided_stranded = 0u64;
        let (mut produced_ok, mut delivered, mut dead_lettered, mut never_produced) =
            (0u64, 0u64, 0u64, 0u64);
        let mut offsets: Vec<(u32, u64, u32)> = Vec::new();

        for (i, m) in st.msgs.iter().enumerate() {
            let msg = i as u32;
            let key = st.ids.key(msg);
            let is_ok = m.flags & PRODUCED_OK != 0;
            let is_delivered = m.deliveries > 0;
            produced_ok += u64::from(is_ok);
            delivered += u64::from(is_delivered);
            dead_lettered += u64::from(m.dead_letter != NONE);
            if m.offset != NONE {
                offsets.push((m.partition, m.offset, msg));
            }
            // Never produced, yet seen.
            if !m.produced() {
                never_produced += 1;
                let (at, what) = if is_delivered {
                    (m.first_delivery, "delivered")
                } else if m.ack_ok != NONE {
                    (m.ack_ok, "acknowledged")
                } else if m.dead_letter != NONE {
                    (m.dead_letter, "dead-lettered")
                } else {
                    (NONE, "")
                };
                if at != NONE {
                    st.findings.add(Kind::Unexpected, || {
                        (
                            vec![at],
                            format!("Message {key} was {what} (event {at}) but never produced."),
                            json!({ "id": key.to_json() }),
                        )
                    });
                }
            }
            // Lost: acknowledged, never delivered nor dead-lettered.
            if is_ok && !is_delivered && m.dead_letter == NONE {
                if drain_complete {
                    let (phase, fault) = st.faults.phase(m.produce_invoke, m.produce_ok);
                    let phase_key = if fault.is_empty() {
                        phase.to_string()
                    } else {
                        format!("{phase} {fault}")
                    };
                    *lost_by_phase.entry(phase_key).or_default() += 1;
                    let when = match phase {
                        "during" => format!(" during a {fault} fault"),
                        "after" => format!(" after a {fault} fault"),
                        "before" => " before any fault".to_string(),
                        _ => String::new(),
                    };
                    let (pi, po) = (m.produce_invoke, m.produce_ok);
                    st.findings.add(Kind::Lost, || {
                        (
                            vec![pi, po, drain_at],
                            format!("Message {key} was produced{when} and acknowledged (events {pi}-{po}), but never delivered by the end of the final drain (event {drain_at}) and never dead-lettered."),
                            json!({ "id": key.to_json(), "phase": phase, "fault": fault }),
                        )
                    });
                } else {
                    undecided_lost += 1;
                }
            }
            // Delivered though the produce definitely failed, or only timed out.
            if !is_ok && is_delivered {
                let (po, fd) = (m.produce_other, m.first_delivery);
                if m.flags & PRODUCED_INFO == 0 && m.flags & PRODUCED_FAIL != 0 {
                    st.findings.add(Kind::FailedButDelivered, || {
                        (
                            vec![po, fd],
                            format!("Every produce of message {key} failed (event {po}), yet it was delivered (event {fd})."),
                            json!({ "id": key.to_json() }),
                        )
                    });
                } else if m.flags & PRODUCED_INFO != 0 {
                    st.findings.add(Kind::Recovered, || {
                        (
                            vec![po, fd],
                            format!("The produce of message {key} was indeterminate (event {po}), and it was delivered (event {fd}): it did happen."),
                            json!({ "id": key.to_json() }),
                        )
                    });
                }
            }
            // Duplicates: any redelivery without acks; with acks, a redelivery after a commit.
            let dups = if st.uses_acks {
                u32::from(m.after_commit)
            } else {
                m.deliveries.saturating_sub(1)
            };
            if dups > 0 && m.flags & STORED_TWICE == 0 {
                let re = st.redeliveries.get(&msg).map(Vec::as_slice).unwrap_or(&[]);
                let mut ops = vec![m.first_delivery];
                let mut consumers = vec![m.first_consumer];
                let mut when = vec![m.first_delivery];
                let mut after = vec![false];
                for r in re {
                    ops.push(r.at);
                    consumers.push(r.consumer);
                    when.push(r.at);
                    after.push(r.after_commit);
                }
                let mut why = format!(
                    "Message {key} was delivered {} (first to consumer {} at event {}",
                    plural(u64::from(m.deliveries), "time"),
                    m.first_consumer,
                    m.first_delivery
                );
                for r in re.iter().take(3) {
                    why.push_str(&format!(
                        ", then to consumer {} at event {}",
                        r.consumer, r.at
                    ));
                }
                if re.len() > 3 || m.deliveries as usize > re.len() + 1 {
                    why.push_str(", ...");
                }
                why.push(')');
                if st.uses_acks {
                    ops.push(m.ack_ok);
                    why.push_str(&format!(
                        ", {} of them after its ack succeeded at event {}.",
                        m.after_commit, m.ack_ok
                    ));
                } else {
                    why.push('.');
                }
                let deliveries = m.deliveries;
                st.findings.add(Kind::Duplicated, || {
                    (
                        ops,
                        why,
                        json!({ "id": key.to_json(), "deliveries": deliveries, "duplicates": dups, "consumers": consumers, "delivered_at": when, "after_ack": after }),
                    )
                });
            }
            if m.acks_ok >= 2 {
                let extra = st.extra_acks.get(&msg).cloned().unwrap_or_default();
                let mut ops = vec![m.ack_ok];
                ops.extend(&extra);
                let (first, n) = (m.ack_ok, m.acks_ok);
                st.findings.add(Kind::DoubleCommitted, || {
                    (
                        ops,
                        format!("Message {key} was acknowledged successfully {n} times (events {first} and {}): two consumers completed it.", extra.first().copied().unwrap_or(NONE)),
                        json!({ "id": key.to_json(), "acks": n }),
                    )
                });
            }
            if st.uses_acks
                && is_delivered
                && m.acks_ok == 0
                && m.flags & ACK_INFO == 0
                && m.dead_letter == NONE
            {
                if drain_complete {
                    let (fd, n) = (m.first_delivery, m.deliveries);
                    st.findings.add(Kind::Stranded, || {
                        (
                            vec![fd, drain_at],
                            format!("Message {key} was delivered {} (first at event {fd}) but never acknowledged nor dead-lettered by the end of the final drain (event {drain_at}).", plural(u64::from(n), "time")),
                            json!({ "id": key.to_json(), "deliveries": n }),
                        )
                    });
                } else {
                    undecided_stranded += 1;
                }
            }
            if let Some(n) = max_retries {
                let total = m.deliveries.max(m.broker_deliveries);
                if u64::from(total) > u64::from(n) + 1 {
                    let re = st.redeliveries.get(&msg).map(Vec::as_slice).unwrap_or(&[]);
                    let mut ops = vec![m.first_delivery];
                    ops.extend(re.iter().map(|r| r.at));
                    let last = ops.last().copied().unwrap_or(NONE);
                    let dead = if m.dead_letter == NONE {
                        "it was never dead-lettered".to_string()
                    } else {
                        format!("it was dead-lettered only at event {}", m.dead_letter)
                    };
                    st.findings.add(Kind::RetriesExceeded, || {
                        (
                            ops,
                            format!("Message {key} was delivered {total} times (last seen at event {last}), more than the {} allowed by --max-retries {n}; {dead}.", u64::from(n) + 1),
                            json!({ "id": key.to_json(), "deliveries": total, "max_retries": n }),
                        )
                    });
                }
            }
        }

        // Offsets: conflicts always, gaps after a complete drain.
        offsets.extend(st.extra_offsets.iter().copied());
        offsets.retain(|&(p, _, _)| p != NO_PART);
        offsets.sort_unstable();
        let mut gaps_checked = false;
        if !offsets.is_empty() {
            gaps_checked = drain_complete;
            for w in offsets.windows(2) {
                let ((p1, o1, m1), (p2, o2, m2)) = (w[0], w[1]);
                if p1 != p2 {
                    continue;
                }
                if o1 == o2 && m1 != m2 {
                    let part = st.part_name(p1);
                    let (a, b) = (st.ids.key(m1), st.ids.key(m2));
                    let ops = vec![
                        evidence_at(&st.msgs[m1 as usize]),
                        evidence_at(&st.msgs[m2 as usize]),
                    ];
                    st.findings.add(Kind::OffsetConflict, || {
                        (
                            ops,
                            format!("Messages {a} and {b} both sit at offset {o1} of {part}."),
                            json!({ "offset": o1, "ids": [a.to_json(), b.to_json()] }),
                        )
                    });
                } else if drain_complete && o2 > o1 + 1 {
                    let part = st.part_name(p1);
                    let (a, b) = (st.ids.key(m1), st.ids.key(m2));
                    let ops = vec![
                        evidence_at(&st.msgs[m1 as usize]),
                        evidence_at(&st.msgs[m2 as usize]),
                    ];
                    let (from, to) = (o1 + 1, o2 - 1);
                    st.findings.add(Kind::OffsetGap, || {
                        (
                            ops,
                            if from == to {
                                format!("Offset {from} of {part} holds no message: message {a} sits at {o1} and {b} at {o2}, and the drain read nothing between.")
                            } else {
                                format!("Offsets {from}-{to} of {part} hold no message: message {a} sits at {o1} and {b} at {o2}, and the drain read nothing between.")
                            },
                            json!({ "missing_from": from, "missing_to": to }),
                        )
                    });
                }
            }
        }

        let findings = std::mem::take(&mut st.findings);
        let summary_parts = findings.finish(g);
        let names = |counted: bool| -> Vec<&str> {
            Kind::ALL
                .iter()
                .filter(|k| k.counts(g) == counted)
                .map(|k| k.name())
                .collect()
        };
        let (counted_kinds, reported_kinds) = (names(true), names(false));

        let no_ops =
            st.figures.produce_ops == 0 && st.figures.consume_ops == 0 && st.figures.drain_ops == 0;
        let mut unknown = Vec::new();
        if no_ops {
            unknown.push("the history has no produce, consume or drain operations: is it a delivery history?".to_string());
        }
        if undecided_lost > 0 && Kind::Lost.counts(g) {
            unknown.push(format!(
                "{} acknowledged but never delivered, and {}: lost cannot be told from not yet consumed",
                plural(undecided_lost, "message was"),
                if st.drain_seen { "the final drain never came back empty" } else { "the history has no final drain" }
            ));
        }
        if undecided_stranded > 0 && Kind::Stranded.counts(g) {
            unknown.push(format!(
                "{} delivered but never acknowledged, with no complete final drain to show whether it was redelivered",
                plural(undecided_stranded, "message was")
            ));
        }
        let unknown_reason = (!unknown.is_empty()).then(|| unknown.join("; "));

        let f = &st.figures;
        let drain_text = if drain_complete {
            "final drain complete"
        } else if st.drain_seen {
            "final drain incomplete (no empty drain)"
        } else {
            "no final drain"
        };
        let mut summary = format!(
            "delivery under {}: {} ({} acknowledged), {} delivered ({}), {} dead-lettered; {drain_text}; {}. Counted under {}: {}; reported only: {}.",
            g.name(),
            plural(st.msgs.len() as u64, "message"),
            produced_ok,
            delivered,
            if f.deliveries == 1 { "1 delivery".to_string() } else { format!("{} deliveries", f.deliveries) },
            dead_lettered,
            summary_parts.sentence(),
            g.name(),
            counted_kinds.join(", "),
            reported_kinds.join(", "),
        );
        if !lost_by_phase.is_empty() {
            let phases: Vec<String> = lost_by_phase
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            summary.push_str(&format!(" Lost by produce time: {}.", phases.join(", ")));
        }
        if !st.uses_acks && st.first_uncertain_consume != NONE && !lost_by_phase.is_empty() {
            let at = st.first_uncertain_consume;
            summary.push_str(&format!(
                " Some consumes had unknown outcomes (the first began at event {at}); without acks, a message handed to one of them is gone with it and counts as lost."
            ));
        }
        if !offsets.is_empty() && !gaps_checked {
            summary.push_str(" Offset gaps not checked: no complete final drain.");
        }
        if max_retries.is_none() {
            summary.push_str(" Retries not checked (no --max-retries).");
        }
        end_summary(&mut summary, &st.ignored, unknown_reason.as_deref());
        let details = json!({
            "guarantee": g.name(),
            "max_retries": max_retries,
            "counted_kinds": counted_kinds,
            "reported_kinds": reported_kinds,
            "messages": {
                "distinct": st.msgs.len(),
                "produced_ok": produced_ok,
                "delivered": delivered,
                "dead_lettered": dead_lettered,
                "never_produced": never_produced,
                "undecided_lost": undecided_lost,
            },
            "ops": f,
            "uses_acks": st.uses_acks,
            "drain": { "present": st.drain_seen, "complete": drain_complete },
            "lost_by_phase": lost_by_phase,
            "fault_windows": st.faults.windows.len(),
            "ignored_ops": st.ignored,
        });
        summary_parts.into_result("delivery", summary, unknown_reason, details)
    }
}

/// The event that taught the checker a message's offset.
pub(super) fn evidence_at(m: &Msg) -> u64 {
    if m.flags & OFFSET_FROM_ACK != 0 {
        m.produce_ok
    } else {
        m.first_delivery
    }
}
