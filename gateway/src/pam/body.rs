//! The `Transaction` request body, checked against every constraint the
//! spec's schema states (types, required fields, enums, lengths, patterns,
//! formats), nested objects included: a body the schema refuses is a 400,
//! even in the parts the engine does not use (promos, jackpots, tips, round
//! transactions). Properties the schema does not list are allowed, as the
//! schema allows them; `null` is refused where the schema names a type.

use serde::{Deserialize, Deserializer};
use serde_json::Number;

use super::wire;

/// A present value, never `null` (absence is `None` through `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TransactionBody {
    pub currency: String,
    /// The query's `provider` names the namespace; this one is only checked.
    #[allow(dead_code)]
    pub provider: String,
    pub transaction_type: String,
    pub cash_amount: Number,
    pub bonus_amount: Number,
    pub promo_amount: Number,
    pub transaction_date_time: String,
    pub provider_transaction_id: String,
    #[serde(default, deserialize_with = "present")]
    pub provider_bet_ref: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub provider_game_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub provider_round_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub bet_code: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub is_game_over: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    promos: Option<Vec<Promo>>,
    #[serde(default, deserialize_with = "present")]
    jackpots: Option<Vec<Jackpot>>,
    #[serde(default, deserialize_with = "present")]
    tip: Option<Tip>,
    #[serde(default, deserialize_with = "present")]
    round_transactions: Option<Vec<RoundTransaction>>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Promo {
    #[serde(default, deserialize_with = "present")]
    promo_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    promo_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    promo_status: Option<String>,
    #[serde(default, deserialize_with = "present")]
    promo_reference: Option<String>,
    #[serde(default, deserialize_with = "present")]
    promo_code: Option<String>,
    #[serde(default, deserialize_with = "present")]
    promo_amount: Option<Number>,
    #[serde(default, deserialize_with = "present")]
    promo_amount_total: Option<Number>,
    #[serde(default, deserialize_with = "present")]
    promo_config_ref: Option<String>,
    #[serde(default, deserialize_with = "present")]
    promo_award_ref: Option<String>,
    #[serde(default, deserialize_with = "present")]
    currency: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Jackpot {
    #[serde(default, deserialize_with = "present")]
    jackpot_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    jackpot_reference: Option<String>,
    #[serde(default, deserialize_with = "present")]
    jackpot_amount: Option<Number>,
    #[serde(default, deserialize_with = "present")]
    jackpot_buckets: Option<Vec<JackpotBucket>>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct JackpotBucket {
    #[serde(default, deserialize_with = "present")]
    bucket_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    bucket_reference: Option<String>,
    #[serde(default, deserialize_with = "present")]
    bucket_amount: Option<Number>,
    #[serde(default, deserialize_with = "present")]
    currency: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Tip {
    #[serde(default, deserialize_with = "present")]
    #[allow(dead_code)]
    tip_amount: Option<Number>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct RoundTransaction {
    #[serde(default, deserialize_with = "present")]
    provider_transaction_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    transaction_date_time: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[allow(dead_code)]
    cash_amount: Option<Number>,
    #[serde(default, deserialize_with = "present")]
    #[allow(dead_code)]
    is_game_over: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[allow(dead_code)]
    jackpot_contribution: Option<Number>,
    transaction_type: String,
    #[serde(default, deserialize_with = "present")]
    provider_bet_ref: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[allow(dead_code)]
    bet_code: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[allow(dead_code)]
    pending: Option<bool>,
}

const PROMO_TYPES: [&str; 8] =
    ["PROMOBONUS", "PROMOTOURNAMENT", "PROMOFROMGAME", "PROMOCAP", "PROMOLIMIT", "PROMOMONEYREWARD", "FREEROUNDS", "FREESPINS"];

/// A string of 1 to 40 characters (the spec's ids and names).
fn id(name: &str, value: Option<&String>) -> Result<(), String> {
    match value {
        Some(text) if text.is_empty() || text.chars().count() > wire::PAM_ID_MAX_LEN => Err(format!("{name} must be 1 to 40 characters")),
        _ => Ok(()),
    }
}

fn currency(name: &str, value: Option<&String>) -> Result<(), String> {
    match value {
        Some(code) if !(code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())) => {
            Err(format!("{name} {code:?} is not three capital letters"))
        }
        _ => Ok(()),
    }
}

fn timestamp(name: &str, value: Option<&String>) -> Result<(), String> {
    match value {
        Some(text) if !wire::is_timestamp(text) => Err(format!("{name} must be an RFC 3339 date-time")),
        _ => Ok(()),
    }
}

fn transaction_type(name: &str, value: &str) -> Result<(), String> {
    match wire::TxType::parse(value) {
        Some(_) => Ok(()),
        None => Err(format!("{name} {value:?} is not a transaction type")),
    }
}

impl TransactionBody {
    /// Parses and checks a body; the message names what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<TransactionBody, String> {
        let body: TransactionBody = serde_json::from_slice(bytes).map_err(|e| format!("invalid transaction: {e}"))?;
        body.check()?;
        Ok(body)
    }

    fn check(&self) -> Result<(), String> {
        currency("currency", Some(&self.currency))?;
        transaction_type("transactionType", &self.transaction_type)?;
        timestamp("transactionDateTime", Some(&self.transaction_date_time))?;
        id("providerTransactionId", Some(&self.provider_transaction_id))?;
        id("providerBetRef", self.provider_bet_ref.as_ref())?;
        id("providerGameId", self.provider_game_id.as_ref())?;
        id("providerRoundId", self.provider_round_id.as_ref())?;
        for promo in self.promos.iter().flatten() {
            if let Some(kind) = &promo.promo_type {
                if !PROMO_TYPES.contains(&kind.as_str()) {
                    return Err(format!("promoType {kind:?} is not a promo type"));
                }
            }
            for (name, value) in [
                ("promoName", &promo.promo_name),
                ("promoStatus", &promo.promo_status),
                ("promoReference", &promo.promo_reference),
                ("promoCode", &promo.promo_code),
                ("promoConfigRef", &promo.promo_config_ref),
                ("promoAwardRef", &promo.promo_award_ref),
            ] {
                id(name, value.as_ref())?;
            }
            let _ = (&promo.promo_amount, &promo.promo_amount_total);
            currency("promo currency", promo.currency.as_ref())?;
        }
        for jackpot in self.jackpots.iter().flatten() {
            id("jackpotId", jackpot.jackpot_id.as_ref())?;
            id("jackpotReference", jackpot.jackpot_reference.as_ref())?;
            let _ = &jackpot.jackpot_amount;
            for bucket in jackpot.jackpot_buckets.iter().flatten() {
                id("bucketType", bucket.bucket_type.as_ref())?;
                id("bucketReference", bucket.bucket_reference.as_ref())?;
                let _ = &bucket.bucket_amount;
                currency("bucket currency", bucket.currency.as_ref())?;
            }
        }
        let _ = &self.tip;
        for round in self.round_transactions.iter().flatten() {
            id("roundTransactions providerTransactionId", round.provider_transaction_id.as_ref())?;
            timestamp("roundTransactions transactionDateTime", round.transaction_date_time.as_ref())?;
            transaction_type("roundTransactions transactionType", &round.transaction_type)?;
            id("roundTransactions providerBetRef", round.provider_bet_ref.as_ref())?;
        }
        let _ = &self.bet_code;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(extra: &str) -> String {
        format!(
            r#"{{"currency":"EUR","provider":"P","transactionType":"WITHDRAW","cashAmount":1.5,"bonusAmount":0,"promoAmount":0,
               "transactionDateTime":"2026-11-24T06:00:00Z","providerTransactionId":"t-1"{extra}}}"#
        )
    }

    #[test]
    fn a_body_is_checked_to_the_schema_nested_parts_included() {
        let parsed = TransactionBody::parse(body("").as_bytes()).expect("a minimal body");
        assert_eq!(parsed.cash_amount.to_string(), "1.5");
        assert!(TransactionBody::parse(body(r#","unknownField":[1,2]"#).as_bytes()).is_ok(), "extra properties are allowed");
        assert!(TransactionBody::parse(body(r#","promos":[{"promoType":"FREESPINS","currency":"USD"}]"#).as_bytes()).is_ok());
        for bad in [
            r#","promos":[{"promoType":"FREE"}]"#,
            r#","promos":[{"promoName":""}]"#,
            r#","jackpots":[{"jackpotBuckets":[{"currency":"usd"}]}]"#,
            r#","roundTransactions":[{"providerTransactionId":"x"}]"#,
            r#","roundTransactions":[{"transactionType":"WITHDRAW","transactionDateTime":"yesterday"}]"#,
            r#","providerBetRef":null"#,
            r#","providerRoundId":"""#,
            r#","providerGameId":"12345678901234567890123456789012345678901""#,
            r#","isGameOver":"yes""#,
            r#","tip":{"tipAmount":"1"}"#,
        ] {
            assert!(TransactionBody::parse(body(bad).as_bytes()).is_err(), "{bad}");
        }
        for bad in [
            r#"{"currency":"EUR"}"#,
            "[]",
            "",
            r#"{"currency":"EURO","provider":"P","transactionType":"WITHDRAW","cashAmount":1,"bonusAmount":0,"promoAmount":0,"transactionDateTime":"2026-11-24T06:00:00Z","providerTransactionId":"t"}"#,
            r#"{"currency":"EUR","provider":"P","transactionType":"BET","cashAmount":1,"bonusAmount":0,"promoAmount":0,"transactionDateTime":"2026-11-24T06:00:00Z","providerTransactionId":"t"}"#,
            r#"{"currency":"EUR","provider":"P","transactionType":"WITHDRAW","cashAmount":"1","bonusAmount":0,"promoAmount":0,"transactionDateTime":"2026-11-24T06:00:00Z","providerTransactionId":"t"}"#,
        ] {
            assert!(TransactionBody::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
