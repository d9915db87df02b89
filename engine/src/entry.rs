//! Canonical binary encoding of a log entry (one batch: its [`Context`] and
//! commands) and of a batch's journal record (its [`Context`] and the
//! events its apply emitted). The persistence layer saves these bytes and
//! replays them on recovery, and raft replicates them, so the decoders
//! trust nothing: every tag, id, currency and amount is validated, every
//! count is bounded before anything is allocated for it, and trailing bytes
//! are refused. No checksum here: the layer that stores the bytes adds one.
//!
//! Layout (integers little-endian, as in [`crate::codec`]):
//!
//! ```text
//! batch:  version u8 (= 2) | index u64 | timestamp_ms u64 | count u32 | command*
//! events: version u8 (= 2) | index u64 | timestamp_ms u64 | count u32 | event*
//! ```
//!
//! Each command, action and event is a one-byte tag then its fields in
//! declaration order. Tags are written out below and never change or get
//! reused; 0 is never a tag, so zeroed bytes do not decode. Field encodings:
//! ids are a length byte then 1 to 48 printable ASCII bytes; a currency is
//! its 8 zero-padded bytes; `Money` is a u64 at most `i64::MAX`; `Amount` is
//! an i64 (its range is checked on apply, not here); `Pockets` is cash,
//! bonus, promo; a bool is 0 or 1; an `Option` is a presence byte (0 or 1)
//! then the value; a list is a u32 count then its items; `LimitKind`,
//! `LimitPeriod`, `LimitSource` and `GameKind` are their `#[repr(u8)]`
//! numbers, which are explicit and already fixed by the snapshot format.
//!
//! The encoding is canonical: bytes that decode re-encode to the same bytes.

use crate::codec::{DecodeError, Reader, Writer};
use crate::command::{Action, BonusTerms, Command, Context, OperatorConfig, Stake, SweepsGrantKind};
use crate::currency::CurrencySpec;
use crate::event::Event;
use crate::games::slot::{SlotOutcome, FREE_SPINS, REELS};
use crate::games::{Choice, DiceBet, Drawn, GameKind, RouletteBet};
use crate::ids::{BonusId, GameId, OperatorId, PlayerId, RedemptionId, RoundId, SessionId, TxId};
use crate::limits::{LimitKind, LimitPeriod, LimitSource};
use crate::money::{Amount, Money};
use crate::shard::{BATCH_COMMANDS_MAX, OPERATOR_CURRENCIES_MAX};

/// Format version of an encoded batch (a log entry).
/// 2: ids up to 48 bytes, session locales, bet aliases, payouts, lookups.
pub const BATCH_FORMAT_VERSION: u8 = 2;
/// Format version of an encoded batch's events (a journal record).
/// 2: ids up to 48 bytes, `AwardCredited`.
pub const EVENTS_FORMAT_VERSION: u8 = 2;

/// Events one command may emit, with room to spare: the most today is a
/// `Play` that first expires a bonus in each of a wallet's four currencies
/// (4 `BonusForfeited`), then emits `BetPlaced`, `WinCredited`, a forfeited
/// share, `GamePlayed`, `RoundSettled`, `BonusConverted` and
/// `SweepsRedeemable`: 11.
pub const EVENTS_PER_COMMAND_MAX: usize = 32;
/// Events one batch may emit.
pub const EVENTS_PER_BATCH_MAX: usize = BATCH_COMMANDS_MAX * EVENTS_PER_COMMAND_MAX;

/// The fewest bytes a command takes: tag, operator, player and the tag of
/// `Action::CreateWallet`. A count of commands is refused if the rest of the
/// input could not hold that many.
const COMMAND_BYTES_MIN: usize = 1 + 4 + 8 + 1;
/// The fewest bytes an event takes: `Event::RngReseeded` is its tag alone.
const EVENT_BYTES_MIN: usize = 1;
/// The fewest bytes of one accepted currency: the code and the scale.
const CURRENCY_SPEC_BYTES: usize = 8 + 1;
/// The fewest bytes of one bonus weight: a one-byte id and the percentage.
const BONUS_WEIGHT_BYTES_MIN: usize = 1 + 1 + 1;
/// An id on the wire: its length byte and at least one byte.
const ID_BYTES_MIN: usize = 1 + 1;
/// Spins of a slot round: the base spin and at most the free spins.
const SLOT_SPINS_MAX: usize = 1 + FREE_SPINS;

/// Encodes one batch: the Context (index, timestamp_ms) and its commands.
/// Appends to `out`.
pub fn encode_batch(ctx: Context, commands: &[Command], out: &mut Vec<u8>) {
    assert!(commands.len() <= BATCH_COMMANDS_MAX, "batch of {} commands exceeds {BATCH_COMMANDS_MAX}", commands.len());
    let mut writer = Writer { bytes: std::mem::take(out) };
    writer.u8(BATCH_FORMAT_VERSION);
    context(&mut writer, ctx);
    list_count(&mut writer, commands.len());
    for command in commands {
        encode_command(&mut writer, command);
    }
    *out = writer.bytes;
}

pub fn decode_batch(bytes: &[u8]) -> Result<(Context, Vec<Command>), DecodeError> {
    let mut reader = Reader::new(bytes);
    let version = reader.u8()?;
    if version != BATCH_FORMAT_VERSION {
        return Err(DecodeError::Version(u16::from(version)));
    }
    let ctx = read_context(&mut reader)?;
    let count = read_count(&mut reader, BATCH_COMMANDS_MAX, COMMAND_BYTES_MIN, "command count")?;
    let mut commands = Vec::with_capacity(count);
    for _ in 0..count {
        commands.push(decode_command(&mut reader)?);
    }
    reader.finish()?;
    Ok((ctx, commands))
}

/// Encodes the events one batch emitted, with the batch's Context.
/// Appends to `out`.
pub fn encode_events(ctx: Context, events: &[Event], out: &mut Vec<u8>) {
    assert!(events.len() <= EVENTS_PER_BATCH_MAX, "batch of {} events exceeds {EVENTS_PER_BATCH_MAX}", events.len());
    let mut writer = Writer { bytes: std::mem::take(out) };
    writer.u8(EVENTS_FORMAT_VERSION);
    context(&mut writer, ctx);
    list_count(&mut writer, events.len());
    for event in events {
        encode_event(&mut writer, event);
    }
    *out = writer.bytes;
}

pub fn decode_events(bytes: &[u8]) -> Result<(Context, Vec<Event>), DecodeError> {
    let mut reader = Reader::new(bytes);
    let version = reader.u8()?;
    if version != EVENTS_FORMAT_VERSION {
        return Err(DecodeError::Version(u16::from(version)));
    }
    let ctx = read_context(&mut reader)?;
    let count = read_count(&mut reader, EVENTS_PER_BATCH_MAX, EVENT_BYTES_MIN, "event count")?;
    // An event can be one byte, so the count alone could ask for far more
    // memory than the input holds; past a batch's worth, the list grows only
    // as events actually decode.
    let mut events = Vec::with_capacity(count.min(BATCH_COMMANDS_MAX));
    for _ in 0..count {
        events.push(decode_event(&mut reader)?);
    }
    reader.finish()?;
    Ok((ctx, events))
}

// ---- shared fields ------------------------------------------------------

fn context(out: &mut Writer, ctx: Context) {
    out.u64(ctx.index);
    out.u64(ctx.timestamp_ms);
}

fn read_context(reader: &mut Reader<'_>) -> Result<Context, DecodeError> {
    Ok(Context { index: reader.u64()?, timestamp_ms: reader.u64()? })
}

fn list_count(out: &mut Writer, len: usize) {
    out.u32(u32::try_from(len).expect("lists in commands and events are far shorter than 2^32"));
}

/// A u32 count, refused if over `max` or if the input left could not hold
/// that many items of at least `item_bytes_min` each, so that no count
/// allocates more than its input could fill.
fn read_count(reader: &mut Reader<'_>, max: usize, item_bytes_min: usize, what: &'static str) -> Result<usize, DecodeError> {
    let count = usize::try_from(reader.u32()?).map_err(|_| reader.invalid(what))?;
    if count > max || count.saturating_mul(item_bytes_min) > reader.remaining() {
        return Err(reader.invalid(what));
    }
    Ok(count)
}

fn option_amount(out: &mut Writer, value: Option<Amount>) {
    match value {
        Some(amount) => {
            out.u8(1);
            out.i64(amount.0);
        }
        None => out.u8(0),
    }
}

fn read_option_amount(reader: &mut Reader<'_>) -> Result<Option<Amount>, DecodeError> {
    Ok(if reader.bool()? { Some(Amount(reader.i64()?)) } else { None })
}

fn option_money(out: &mut Writer, value: Option<Money>) {
    out.option_u64(value.map(Money::minor));
}

fn read_option_money(reader: &mut Reader<'_>) -> Result<Option<Money>, DecodeError> {
    match reader.option_u64()? {
        Some(minor) => Money::from_minor(minor).map(Some).ok_or_else(|| reader.invalid("amount")),
        None => Ok(None),
    }
}

fn option_hash(out: &mut Writer, value: Option<[u8; 32]>) {
    match value {
        Some(bytes) => {
            out.u8(1);
            out.raw(&bytes);
        }
        None => out.u8(0),
    }
}

fn read_option_hash(reader: &mut Reader<'_>) -> Result<Option<[u8; 32]>, DecodeError> {
    Ok(if reader.bool()? { Some(reader.array()?) } else { None })
}

fn read_limit_source(reader: &mut Reader<'_>) -> Result<LimitSource, DecodeError> {
    LimitSource::from_u8(reader.u8()?).ok_or_else(|| reader.invalid("limit source"))
}

fn read_limit_kind(reader: &mut Reader<'_>) -> Result<LimitKind, DecodeError> {
    LimitKind::from_u8(reader.u8()?).ok_or_else(|| reader.invalid("limit kind"))
}

fn read_limit_period(reader: &mut Reader<'_>) -> Result<LimitPeriod, DecodeError> {
    LimitPeriod::from_u8(reader.u8()?).ok_or_else(|| reader.invalid("limit period"))
}

fn sweeps_grant_kind(out: &mut Writer, kind: SweepsGrantKind) {
    out.u8(match kind {
        SweepsGrantKind::PurchaseBonus => 1,
        SweepsGrantKind::DailyReward => 2,
        SweepsGrantKind::Promotion => 3,
        SweepsGrantKind::MailIn => 4,
    });
}

fn read_sweeps_grant_kind(reader: &mut Reader<'_>) -> Result<SweepsGrantKind, DecodeError> {
    match reader.u8()? {
        1 => Ok(SweepsGrantKind::PurchaseBonus),
        2 => Ok(SweepsGrantKind::DailyReward),
        3 => Ok(SweepsGrantKind::Promotion),
        4 => Ok(SweepsGrantKind::MailIn),
        _ => Err(reader.invalid("sweeps grant kind")),
    }
}

fn stake(out: &mut Writer, stake: &Stake) {
    match *stake {
        Stake::Auto(amount) => {
            out.u8(1);
            out.i64(amount.0);
        }
        Stake::Split { cash, bonus, promo } => {
            out.u8(2);
            out.i64(cash.0);
            out.i64(bonus.0);
            out.i64(promo.0);
        }
    }
}

fn read_stake(reader: &mut Reader<'_>) -> Result<Stake, DecodeError> {
    match reader.u8()? {
        1 => Ok(Stake::Auto(Amount(reader.i64()?))),
        2 => Ok(Stake::Split { cash: Amount(reader.i64()?), bonus: Amount(reader.i64()?), promo: Amount(reader.i64()?) }),
        _ => Err(reader.invalid("stake")),
    }
}

/// A choice is recorded as stated, valid or not: a command may carry one the
/// engine refuses, and an event's choice was judged by the game version it
/// names, which need not be today's.
fn choice(out: &mut Writer, choice: &Choice) {
    match *choice {
        Choice::Slot => out.u8(1),
        Choice::Roulette(bet) => {
            out.u8(2);
            roulette_bet(out, bet);
        }
        Choice::Dice(DiceBet { target, over }) => {
            out.u8(3);
            out.u16(target);
            out.u8(u8::from(over));
        }
        Choice::Crash { target } => {
            out.u8(4);
            out.u32(target);
        }
    }
}

fn read_choice(reader: &mut Reader<'_>) -> Result<Choice, DecodeError> {
    match reader.u8()? {
        1 => Ok(Choice::Slot),
        2 => Ok(Choice::Roulette(read_roulette_bet(reader)?)),
        3 => Ok(Choice::Dice(DiceBet { target: reader.u16()?, over: reader.bool()? })),
        4 => Ok(Choice::Crash { target: reader.u32()? }),
        _ => Err(reader.invalid("choice")),
    }
}

fn roulette_bet(out: &mut Writer, bet: RouletteBet) {
    match bet {
        RouletteBet::Straight(number) => {
            out.u8(1);
            out.u8(number);
        }
        RouletteBet::Split(first, second) => {
            out.u8(2);
            out.u8(first);
            out.u8(second);
        }
        RouletteBet::Street(row) => {
            out.u8(3);
            out.u8(row);
        }
        RouletteBet::Trio { high } => {
            out.u8(4);
            out.u8(u8::from(high));
        }
        RouletteBet::Corner(number) => {
            out.u8(5);
            out.u8(number);
        }
        RouletteBet::FirstFour => out.u8(6),
        RouletteBet::SixLine(row) => {
            out.u8(7);
            out.u8(row);
        }
        RouletteBet::Column(column) => {
            out.u8(8);
            out.u8(column);
        }
        RouletteBet::Dozen(dozen) => {
            out.u8(9);
            out.u8(dozen);
        }
        RouletteBet::Red => out.u8(10),
        RouletteBet::Black => out.u8(11),
        RouletteBet::Odd => out.u8(12),
        RouletteBet::Even => out.u8(13),
        RouletteBet::Low => out.u8(14),
        RouletteBet::High => out.u8(15),
    }
}

fn read_roulette_bet(reader: &mut Reader<'_>) -> Result<RouletteBet, DecodeError> {
    match reader.u8()? {
        1 => Ok(RouletteBet::Straight(reader.u8()?)),
        2 => Ok(RouletteBet::Split(reader.u8()?, reader.u8()?)),
        3 => Ok(RouletteBet::Street(reader.u8()?)),
        4 => Ok(RouletteBet::Trio { high: reader.bool()? }),
        5 => Ok(RouletteBet::Corner(reader.u8()?)),
        6 => Ok(RouletteBet::FirstFour),
        7 => Ok(RouletteBet::SixLine(reader.u8()?)),
        8 => Ok(RouletteBet::Column(reader.u8()?)),
        9 => Ok(RouletteBet::Dozen(reader.u8()?)),
        10 => Ok(RouletteBet::Red),
        11 => Ok(RouletteBet::Black),
        12 => Ok(RouletteBet::Odd),
        13 => Ok(RouletteBet::Even),
        14 => Ok(RouletteBet::Low),
        15 => Ok(RouletteBet::High),
        _ => Err(reader.invalid("roulette bet")),
    }
}

/// Stops are recorded as drawn, not checked against today's reel strips:
/// the event names the game version they were drawn on.
fn drawn(out: &mut Writer, drawn: &Drawn) {
    match drawn {
        Drawn::Slot(outcome) => {
            assert!(
                (1..=SLOT_SPINS_MAX).contains(&outcome.spins.len()),
                "a slot round has a base spin and at most {FREE_SPINS} free spins, not {} spins",
                outcome.spins.len()
            );
            out.u8(1);
            out.u8(u8::try_from(outcome.spins.len()).expect("checked above"));
            for stops in &outcome.spins {
                out.raw(stops);
            }
        }
        Drawn::Roulette { pocket } => {
            out.u8(2);
            out.u8(*pocket);
        }
        Drawn::Dice { roll } => {
            out.u8(3);
            out.u16(*roll);
        }
        Drawn::Crash { point } => {
            out.u8(4);
            out.u32(*point);
        }
    }
}

fn read_drawn(reader: &mut Reader<'_>) -> Result<Drawn, DecodeError> {
    match reader.u8()? {
        1 => {
            let count = usize::from(reader.u8()?);
            if !(1..=SLOT_SPINS_MAX).contains(&count) {
                return Err(reader.invalid("slot spin count"));
            }
            let mut spins = Vec::with_capacity(count);
            for _ in 0..count {
                spins.push(reader.array::<REELS>()?);
            }
            Ok(Drawn::Slot(SlotOutcome { spins }))
        }
        2 => Ok(Drawn::Roulette { pocket: reader.u8()? }),
        3 => Ok(Drawn::Dice { roll: reader.u16()? }),
        4 => Ok(Drawn::Crash { point: reader.u32()? }),
        _ => Err(reader.invalid("drawn outcome")),
    }
}

fn read_game_kind(reader: &mut Reader<'_>) -> Result<GameKind, DecodeError> {
    GameKind::from_u8(reader.u8()?).ok_or_else(|| reader.invalid("game kind"))
}

// ---- commands -----------------------------------------------------------

fn encode_command(out: &mut Writer, command: &Command) {
    match command {
        Command::ConfigureOperator(config) => {
            out.u8(1);
            operator_config(out, config);
        }
        Command::Reseed { entropy } => {
            out.u8(2);
            out.raw(entropy);
        }
        Command::Player { operator, player, action } => {
            out.u8(3);
            out.u32(operator.0);
            out.u64(player.0);
            encode_action(out, action);
        }
        Command::Claim { operator, key, player } => {
            out.u8(4);
            out.u32(operator.0);
            out.id(&key.0);
            out.u64(player.0);
        }
    }
}

fn decode_command(reader: &mut Reader<'_>) -> Result<Command, DecodeError> {
    match reader.u8()? {
        1 => Ok(Command::ConfigureOperator(read_operator_config(reader)?)),
        2 => Ok(Command::Reseed { entropy: reader.array()? }),
        3 => Ok(Command::Player { operator: OperatorId(reader.u32()?), player: PlayerId(reader.u64()?), action: decode_action(reader)? }),
        4 => Ok(Command::Claim { operator: OperatorId(reader.u32()?), key: TxId(reader.id()?), player: PlayerId(reader.u64()?) }),
        _ => Err(reader.invalid("command tag")),
    }
}

/// Lists inside a command are bounded by the input only, not by the
/// engine's limits (`OPERATOR_CURRENCIES_MAX`, `BONUS_WEIGHTS_MAX`): the
/// engine refuses an over-long list when it applies the command, so such a
/// command is a legitimate part of the log and must replay as it came.
fn operator_config(out: &mut Writer, config: &OperatorConfig) {
    out.u32(config.operator.0);
    out.u8(u8::from(config.sweepstakes));
    list_count(out, config.currencies.len());
    for spec in &config.currencies {
        out.currency(spec.currency);
        out.u8(spec.scale);
    }
    out.u64(config.limit_increase_delay_ms);
    out.u64(config.redemption_min_minor);
}

fn read_operator_config(reader: &mut Reader<'_>) -> Result<OperatorConfig, DecodeError> {
    let operator = OperatorId(reader.u32()?);
    let sweepstakes = reader.bool()?;
    let count = read_count(reader, usize::MAX, CURRENCY_SPEC_BYTES, "currency count")?;
    let mut currencies = Vec::with_capacity(count.min(OPERATOR_CURRENCIES_MAX));
    for _ in 0..count {
        currencies.push(CurrencySpec { currency: reader.currency()?, scale: reader.u8()? });
    }
    Ok(OperatorConfig { operator, sweepstakes, currencies, limit_increase_delay_ms: reader.u64()?, redemption_min_minor: reader.u64()? })
}

fn bonus_terms(out: &mut Writer, terms: &BonusTerms) {
    out.id(&terms.bonus.0);
    out.currency(terms.currency);
    out.i64(terms.amount.0);
    out.u32(terms.wagering_multiple);
    out.i64(terms.max_bet.0);
    out.u64(terms.duration_ms);
    list_count(out, terms.weights.len());
    for (game, percent) in &terms.weights {
        out.id(&game.0);
        out.u8(*percent);
    }
    out.u8(terms.default_weight_percent);
}

fn read_bonus_terms(reader: &mut Reader<'_>) -> Result<BonusTerms, DecodeError> {
    use crate::bonus::BONUS_WEIGHTS_MAX;
    let bonus = BonusId(reader.id()?);
    let currency = reader.currency()?;
    let amount = Amount(reader.i64()?);
    let wagering_multiple = reader.u32()?;
    let max_bet = Amount(reader.i64()?);
    let duration_ms = reader.u64()?;
    let count = read_count(reader, usize::MAX, BONUS_WEIGHT_BYTES_MIN, "bonus weight count")?;
    let mut weights = Vec::with_capacity(count.min(BONUS_WEIGHTS_MAX));
    for _ in 0..count {
        weights.push((GameId(reader.id()?), reader.u8()?));
    }
    let default_weight_percent = reader.u8()?;
    Ok(BonusTerms { bonus, currency, amount, wagering_multiple, max_bet, duration_ms, weights, default_weight_percent })
}

fn encode_action(out: &mut Writer, action: &Action) {
    match action {
        Action::CreateWallet => out.u8(1),
        Action::SetBlocked { blocked } => {
            out.u8(2);
            out.u8(u8::from(*blocked));
        }
        Action::Deposit { tx, currency, amount } => {
            out.u8(3);
            out.id(&tx.0);
            out.currency(*currency);
            out.i64(amount.0);
        }
        Action::Withdraw { tx, currency, amount } => {
            out.u8(4);
            out.id(&tx.0);
            out.currency(*currency);
            out.i64(amount.0);
        }
        Action::OpenSession { game, currency, duration_ms, locale } => {
            out.u8(5);
            out.id(&game.0);
            out.currency(*currency);
            out.u64(*duration_ms);
            out.locale(*locale);
        }
        Action::CloseSession { session } => {
            out.u8(6);
            out.u64(session.0);
        }
        Action::Bet { tx, session, round, game, currency, stake: amount, alias } => {
            out.u8(7);
            out.id(&tx.0);
            out.u64(session.0);
            out.id(&round.0);
            out.option_id(game.as_ref().map(|g| &g.0));
            out.currency(*currency);
            stake(out, amount);
            out.option_id(alias.as_ref().map(|a| &a.0));
        }
        Action::Win { tx, bet, amount, close_round } => {
            out.u8(8);
            out.id(&tx.0);
            out.id(&bet.0);
            stake(out, amount);
            out.u8(u8::from(*close_round));
        }
        Action::Rollback { tx, bet, currency } => {
            out.u8(9);
            out.id(&tx.0);
            out.id(&bet.0);
            out.currency(*currency);
        }
        Action::CloseRound { round } => {
            out.u8(10);
            out.id(&round.0);
        }
        Action::Balance { currency } => {
            out.u8(11);
            out.currency(*currency);
        }
        Action::SetLimit { source, kind, period, currency, amount } => {
            out.u8(12);
            out.u8(*source as u8);
            out.u8(*kind as u8);
            out.u8(*period as u8);
            out.currency(*currency);
            option_amount(out, *amount);
        }
        Action::SetSessionTimeLimit { source, duration_ms } => {
            out.u8(13);
            out.u8(*source as u8);
            out.option_u64(*duration_ms);
        }
        Action::SelfExclude { until_ms } => {
            out.u8(14);
            out.option_u64(*until_ms);
        }
        Action::CoolOff { duration_ms } => {
            out.u8(15);
            out.u64(*duration_ms);
        }
        Action::GrantBonus { tx, terms } => {
            out.u8(16);
            out.id(&tx.0);
            bonus_terms(out, terms);
        }
        Action::ForfeitBonus { bonus } => {
            out.u8(17);
            out.id(&bonus.0);
        }
        Action::GrantSweeps { tx, kind, amount, playthrough_multiple } => {
            out.u8(18);
            out.id(&tx.0);
            sweeps_grant_kind(out, *kind);
            out.i64(amount.0);
            out.u32(*playthrough_multiple);
        }
        Action::RequestRedemption { redemption, amount } => {
            out.u8(19);
            out.id(&redemption.0);
            out.i64(amount.0);
        }
        Action::ApproveRedemption { redemption } => {
            out.u8(20);
            out.id(&redemption.0);
        }
        Action::RejectRedemption { redemption } => {
            out.u8(21);
            out.id(&redemption.0);
        }
        Action::Play { tx, session, currency, stake, choice: chosen, fair } => {
            out.u8(22);
            out.id(&tx.0);
            out.u64(session.0);
            out.currency(*currency);
            out.i64(stake.0);
            choice(out, chosen);
            out.u8(u8::from(*fair));
        }
        Action::RotateSeeds { client_seed } => {
            out.u8(23);
            out.id(client_seed);
        }
        Action::SessionInfo { session } => {
            out.u8(24);
            out.u64(session.0);
        }
        Action::RefreshSession { session } => {
            out.u8(25);
            out.u64(session.0);
        }
        Action::Payout { tx, round, game, currency, bet, amount, close_round, award, claim } => {
            out.u8(26);
            out.id(&tx.0);
            out.option_id(round.as_ref().map(|r| &r.0));
            out.option_id(game.as_ref().map(|g| &g.0));
            out.currency(*currency);
            out.option_id(bet.as_ref().map(|b| &b.0));
            stake(out, amount);
            out.u8(u8::from(*close_round));
            out.u8(u8::from(*award));
            out.u8(u8::from(*claim));
        }
        Action::Lookup { txs } => {
            out.u8(27);
            list_count(out, txs.len());
            for tx in txs {
                out.id(&tx.0);
            }
        }
        Action::RoundInfo { round } => {
            out.u8(28);
            out.id(&round.0);
        }
    }
}

fn decode_action(reader: &mut Reader<'_>) -> Result<Action, DecodeError> {
    let action = match reader.u8()? {
        1 => Action::CreateWallet,
        2 => Action::SetBlocked { blocked: reader.bool()? },
        3 => Action::Deposit { tx: TxId(reader.id()?), currency: reader.currency()?, amount: Amount(reader.i64()?) },
        4 => Action::Withdraw { tx: TxId(reader.id()?), currency: reader.currency()?, amount: Amount(reader.i64()?) },
        5 => Action::OpenSession {
            game: GameId(reader.id()?),
            currency: reader.currency()?,
            duration_ms: reader.u64()?,
            locale: reader.locale()?,
        },
        6 => Action::CloseSession { session: SessionId(reader.u64()?) },
        7 => Action::Bet {
            tx: TxId(reader.id()?),
            session: SessionId(reader.u64()?),
            round: RoundId(reader.id()?),
            game: reader.option_id()?.map(GameId),
            currency: reader.currency()?,
            stake: read_stake(reader)?,
            alias: reader.option_id()?.map(TxId),
        },
        8 => Action::Win { tx: TxId(reader.id()?), bet: TxId(reader.id()?), amount: read_stake(reader)?, close_round: reader.bool()? },
        9 => Action::Rollback { tx: TxId(reader.id()?), bet: TxId(reader.id()?), currency: reader.currency()? },
        10 => Action::CloseRound { round: RoundId(reader.id()?) },
        11 => Action::Balance { currency: reader.currency()? },
        12 => Action::SetLimit {
            source: read_limit_source(reader)?,
            kind: read_limit_kind(reader)?,
            period: read_limit_period(reader)?,
            currency: reader.currency()?,
            amount: read_option_amount(reader)?,
        },
        13 => Action::SetSessionTimeLimit { source: read_limit_source(reader)?, duration_ms: reader.option_u64()? },
        14 => Action::SelfExclude { until_ms: reader.option_u64()? },
        15 => Action::CoolOff { duration_ms: reader.u64()? },
        16 => Action::GrantBonus { tx: TxId(reader.id()?), terms: read_bonus_terms(reader)? },
        17 => Action::ForfeitBonus { bonus: BonusId(reader.id()?) },
        18 => Action::GrantSweeps {
            tx: TxId(reader.id()?),
            kind: read_sweeps_grant_kind(reader)?,
            amount: Amount(reader.i64()?),
            playthrough_multiple: reader.u32()?,
        },
        19 => Action::RequestRedemption { redemption: RedemptionId(reader.id()?), amount: Amount(reader.i64()?) },
        20 => Action::ApproveRedemption { redemption: RedemptionId(reader.id()?) },
        21 => Action::RejectRedemption { redemption: RedemptionId(reader.id()?) },
        22 => Action::Play {
            tx: TxId(reader.id()?),
            session: SessionId(reader.u64()?),
            currency: reader.currency()?,
            stake: Amount(reader.i64()?),
            choice: read_choice(reader)?,
            fair: reader.bool()?,
        },
        23 => Action::RotateSeeds { client_seed: reader.id()? },
        24 => Action::SessionInfo { session: SessionId(reader.u64()?) },
        25 => Action::RefreshSession { session: SessionId(reader.u64()?) },
        26 => Action::Payout {
            tx: TxId(reader.id()?),
            round: reader.option_id()?.map(RoundId),
            game: reader.option_id()?.map(GameId),
            currency: reader.currency()?,
            bet: reader.option_id()?.map(TxId),
            amount: read_stake(reader)?,
            close_round: reader.bool()?,
            award: reader.bool()?,
            claim: reader.bool()?,
        },
        27 => {
            let count = read_count(reader, usize::MAX, ID_BYTES_MIN, "lookup count")?;
            let mut txs = Vec::with_capacity(count.min(crate::command::LOOKUP_MAX));
            for _ in 0..count {
                txs.push(TxId(reader.id()?));
            }
            Action::Lookup { txs }
        }
        28 => Action::RoundInfo { round: RoundId(reader.id()?) },
        _ => return Err(reader.invalid("action tag")),
    };
    Ok(action)
}

// ---- events -------------------------------------------------------------

fn encode_event(out: &mut Writer, event: &Event) {
    match event {
        Event::OperatorConfigured { operator } => {
            out.u8(1);
            out.u32(operator.0);
        }
        Event::WalletCreated { player, operator } => {
            out.u8(2);
            out.u64(player.0);
            out.u32(operator.0);
        }
        Event::PlayerBlocked { player, blocked } => {
            out.u8(3);
            out.u64(player.0);
            out.u8(u8::from(*blocked));
        }
        Event::Deposited { player, tx, currency, amount } => {
            out.u8(4);
            out.u64(player.0);
            out.id(&tx.0);
            out.currency(*currency);
            out.money(*amount);
        }
        Event::Withdrawn { player, tx, currency, amount } => {
            out.u8(5);
            out.u64(player.0);
            out.id(&tx.0);
            out.currency(*currency);
            out.money(*amount);
        }
        Event::SessionOpened { player, session, game, currency, expires_ms } => {
            out.u8(6);
            out.u64(player.0);
            out.u64(session.0);
            out.id(&game.0);
            out.currency(*currency);
            out.u64(*expires_ms);
        }
        Event::SessionClosed { player, session } => {
            out.u8(7);
            out.u64(player.0);
            out.u64(session.0);
        }
        Event::BetPlaced { player, tx, round, game, currency, stake } => {
            out.u8(8);
            out.u64(player.0);
            out.id(&tx.0);
            out.id(&round.0);
            out.id(&game.0);
            out.currency(*currency);
            out.pockets(stake);
        }
        Event::WinCredited { player, tx, bet, round, game, currency, win } => {
            out.u8(9);
            out.u64(player.0);
            out.id(&tx.0);
            out.id(&bet.0);
            out.id(&round.0);
            out.id(&game.0);
            out.currency(*currency);
            out.pockets(win);
        }
        Event::BetRolledBack { player, tx, bet, round, currency, refund } => {
            out.u8(10);
            out.u64(player.0);
            out.id(&tx.0);
            out.id(&bet.0);
            out.id(&round.0);
            out.currency(*currency);
            out.pockets(refund);
        }
        Event::RollbackRecordedInAdvance { player, tx, bet } => {
            out.u8(11);
            out.u64(player.0);
            out.id(&tx.0);
            out.id(&bet.0);
        }
        Event::RoundSettled { player, round, game, currency, stake, win, bet_count } => {
            out.u8(12);
            out.u64(player.0);
            out.id(&round.0);
            out.id(&game.0);
            out.currency(*currency);
            out.money(*stake);
            out.money(*win);
            out.u32(*bet_count);
        }
        Event::LimitHit { player, kind, period, currency, limit } => {
            out.u8(13);
            out.u64(player.0);
            out.u8(*kind as u8);
            out.u8(*period as u8);
            out.currency(*currency);
            out.money(*limit);
        }
        Event::LimitChanged { player, source, kind, period, currency, amount, effective_ms } => {
            out.u8(14);
            out.u64(player.0);
            out.u8(*source as u8);
            out.u8(*kind as u8);
            out.u8(*period as u8);
            out.currency(*currency);
            option_money(out, *amount);
            out.u64(*effective_ms);
        }
        Event::SessionTimeLimitChanged { player, source, duration_ms, effective_ms } => {
            out.u8(15);
            out.u64(player.0);
            out.u8(*source as u8);
            out.option_u64(*duration_ms);
            out.u64(*effective_ms);
        }
        Event::SelfExcluded { player, until_ms } => {
            out.u8(16);
            out.u64(player.0);
            out.u64(*until_ms);
        }
        Event::CoolOffStarted { player, until_ms } => {
            out.u8(17);
            out.u64(player.0);
            out.u64(*until_ms);
        }
        Event::BonusGranted { player, tx, bonus, currency, amount, wagering_required } => {
            out.u8(18);
            out.u64(player.0);
            out.id(&tx.0);
            out.id(&bonus.0);
            out.currency(*currency);
            out.money(*amount);
            out.money(*wagering_required);
        }
        Event::BonusConverted { player, bonus, currency, amount } => {
            out.u8(19);
            out.u64(player.0);
            out.id(&bonus.0);
            out.currency(*currency);
            out.money(*amount);
        }
        Event::BonusForfeited { player, bonus, currency, amount } => {
            out.u8(20);
            out.u64(player.0);
            out.id(&bonus.0);
            out.currency(*currency);
            out.money(*amount);
        }
        Event::SweepsGranted { player, tx, kind, amount, playthrough } => {
            out.u8(21);
            out.u64(player.0);
            out.id(&tx.0);
            sweeps_grant_kind(out, *kind);
            out.money(*amount);
            out.money(*playthrough);
        }
        Event::SweepsRedeemable { player, amount } => {
            out.u8(22);
            out.u64(player.0);
            out.money(*amount);
        }
        Event::RedemptionRequested { player, redemption, amount } => {
            out.u8(23);
            out.u64(player.0);
            out.id(&redemption.0);
            out.money(*amount);
        }
        Event::RedemptionPaid { player, redemption, amount } => {
            out.u8(24);
            out.u64(player.0);
            out.id(&redemption.0);
            out.money(*amount);
        }
        Event::RedemptionRejected { player, redemption, amount } => {
            out.u8(25);
            out.u64(player.0);
            out.id(&redemption.0);
            out.money(*amount);
        }
        Event::RngReseeded => out.u8(26),
        Event::GamePlayed { player, tx, game, version, choice: chosen, stake, drawn: outcome, win, fair } => {
            out.u8(27);
            out.u64(player.0);
            out.id(&tx.0);
            out.u8(*game as u8);
            out.u16(*version);
            choice(out, chosen);
            out.money(*stake);
            drawn(out, outcome);
            out.money(*win);
            match fair {
                Some((nonce, server_seed_hash)) => {
                    out.u8(1);
                    out.u64(*nonce);
                    out.raw(server_seed_hash);
                }
                None => out.u8(0),
            }
        }
        Event::SeedsRotated { player, revealed, server_seed_hash } => {
            out.u8(28);
            out.u64(player.0);
            option_hash(out, *revealed);
            out.raw(server_seed_hash);
        }
        Event::AwardCredited { player, tx, round, game, currency, amount } => {
            out.u8(29);
            out.u64(player.0);
            out.id(&tx.0);
            out.option_id(round.as_ref().map(|r| &r.0));
            out.option_id(game.as_ref().map(|g| &g.0));
            out.currency(*currency);
            out.pockets(amount);
        }
    }
}

fn decode_event(reader: &mut Reader<'_>) -> Result<Event, DecodeError> {
    let event = match reader.u8()? {
        1 => Event::OperatorConfigured { operator: OperatorId(reader.u32()?) },
        2 => Event::WalletCreated { player: PlayerId(reader.u64()?), operator: OperatorId(reader.u32()?) },
        3 => Event::PlayerBlocked { player: PlayerId(reader.u64()?), blocked: reader.bool()? },
        4 => Event::Deposited {
            player: PlayerId(reader.u64()?),
            tx: TxId(reader.id()?),
            currency: reader.currency()?,
            amount: reader.money()?,
        },
        5 => Event::Withdrawn {
            player: PlayerId(reader.u64()?),
            tx: TxId(reader.id()?),
            currency: reader.currency()?,
            amount: reader.money()?,
        },
        6 => Event::SessionOpened {
            player: PlayerId(reader.u64()?),
            session: SessionId(reader.u64()?),
            game: GameId(reader.id()?),
            currency: reader.currency()?,
            expires_ms: reader.u64()?,
        },
        7 => Event::SessionClosed { player: PlayerId(reader.u64()?), session: SessionId(reader.u64()?) },
        8 => Event::BetPlaced {
            player: PlayerId(reader.u64()?),
            tx: TxId(reader.id()?),
            round: RoundId(reader.id()?),
            game: GameId(reader.id()?),
            currency: reader.currency()?,
            stake: reader.pockets()?,
        },
        9 => Event::WinCredited {
            player: PlayerId(reader.u64()?),
            tx: TxId(reader.id()?),
            bet: TxId(reader.id()?),
            round: RoundId(reader.id()?),
            game: GameId(reader.id()?),
            currency: reader.currency()?,
            win: reader.pockets()?,
        },
        10 => Event::BetRolledBack {
            player: PlayerId(reader.u64()?),
            tx: TxId(reader.id()?),
            bet: TxId(reader.id()?),
            round: RoundId(reader.id()?),
            currency: reader.currency()?,
            refund: reader.pockets()?,
        },
        11 => Event::RollbackRecordedInAdvance { player: PlayerId(reader.u64()?), tx: TxId(reader.id()?), bet: TxId(reader.id()?) },
        12 => Event::RoundSettled {
            player: PlayerId(reader.u64()?),
            round: RoundId(reader.id()?),
            game: GameId(reader.id()?),
            currency: reader.currency()?,
            stake: reader.money()?,
            win: reader.money()?,
            bet_count: reader.u32()?,
        },
        13 => Event::LimitHit {
            player: PlayerId(reader.u64()?),
            kind: read_limit_kind(reader)?,
            period: read_limit_period(reader)?,
            currency: reader.currency()?,
            limit: reader.money()?,
        },
        14 => Event::LimitChanged {
            player: PlayerId(reader.u64()?),
            source: read_limit_source(reader)?,
            kind: read_limit_kind(reader)?,
            period: read_limit_period(reader)?,
            currency: reader.currency()?,
            amount: read_option_money(reader)?,
            effective_ms: reader.u64()?,
        },
        15 => Event::SessionTimeLimitChanged {
            player: PlayerId(reader.u64()?),
            source: read_limit_source(reader)?,
            duration_ms: reader.option_u64()?,
            effective_ms: reader.u64()?,
        },
        16 => Event::SelfExcluded { player: PlayerId(reader.u64()?), until_ms: reader.u64()? },
        17 => Event::CoolOffStarted { player: PlayerId(reader.u64()?), until_ms: reader.u64()? },
        18 => Event::BonusGranted {
            player: PlayerId(reader.u64()?),
            tx: TxId(reader.id()?),
            bonus: BonusId(reader.id()?),
            currency: reader.currency()?,
            amount: reader.money()?,
            wagering_required: reader.money()?,
        },
        19 => Event::BonusConverted {
            player: PlayerId(reader.u64()?),
            bonus: BonusId(reader.id()?),
            currency: reader.currency()?,
            amount: reader.money()?,
        },
        20 => Event::BonusForfeited {
            player: PlayerId(reader.u64()?),
            bonus: BonusId(reader.id()?),
            currency: reader.currency()?,
            amount: reader.money()?,
        },
        21 => Event::SweepsGranted {
            player: PlayerId(reader.u64()?),
            tx: TxId(reader.id()?),
            kind: read_sweeps_grant_kind(reader)?,
            amount: reader.money()?,
            playthrough: reader.money()?,
        },
        22 => Event::SweepsRedeemable { player: PlayerId(reader.u64()?), amount: reader.money()? },
        23 => {
            Event::RedemptionRequested { player: PlayerId(reader.u64()?), redemption: RedemptionId(reader.id()?), amount: reader.money()? }
        }
        24 => Event::RedemptionPaid { player: PlayerId(reader.u64()?), redemption: RedemptionId(reader.id()?), amount: reader.money()? },
        25 => {
            Event::RedemptionRejected { player: PlayerId(reader.u64()?), redemption: RedemptionId(reader.id()?), amount: reader.money()? }
        }
        26 => Event::RngReseeded,
        27 => Event::GamePlayed {
            player: PlayerId(reader.u64()?),
            tx: TxId(reader.id()?),
            game: read_game_kind(reader)?,
            version: reader.u16()?,
            choice: read_choice(reader)?,
            stake: reader.money()?,
            drawn: read_drawn(reader)?,
            win: reader.money()?,
            fair: if reader.bool()? { Some((reader.u64()?, reader.array()?)) } else { None },
        },
        28 => {
            Event::SeedsRotated { player: PlayerId(reader.u64()?), revealed: read_option_hash(reader)?, server_seed_hash: reader.array()? }
        }
        29 => Event::AwardCredited {
            player: PlayerId(reader.u64()?),
            tx: TxId(reader.id()?),
            round: reader.option_id()?.map(RoundId),
            game: reader.option_id()?.map(GameId),
            currency: reader.currency()?,
            amount: reader.pockets()?,
        },
        _ => return Err(reader.invalid("event tag")),
    };
    Ok(event)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::currency::Currency;
    use crate::ids::ExternalId;
    use crate::money::Pockets;

    const CTX: Context = Context { index: 42, timestamp_ms: 1_700_000_000_000 };

    fn tx(text: &str) -> TxId {
        TxId::new(text).expect("a valid test id")
    }
    fn round(text: &str) -> RoundId {
        RoundId::new(text).expect("a valid test id")
    }
    fn game(text: &str) -> GameId {
        GameId::new(text).expect("a valid test id")
    }
    fn bonus(text: &str) -> BonusId {
        BonusId::new(text).expect("a valid test id")
    }
    fn redemption(text: &str) -> RedemptionId {
        RedemptionId::new(text).expect("a valid test id")
    }
    fn eur() -> Currency {
        Currency::new("EUR").expect("a valid test currency")
    }
    fn money(minor: u64) -> Money {
        Money::from_minor(minor).expect("a valid test amount")
    }
    fn pockets(cash: u64, bonus: u64, promo: u64) -> Pockets {
        Pockets { cash: money(cash), bonus: money(bonus), promo: money(promo) }
    }

    /// Index of each variant. The matches have no wildcard, so a new variant
    /// does not compile until it is listed here, and then the coverage check
    /// fails until a sample of it exists.
    fn command_variant(command: &Command) -> usize {
        match command {
            Command::ConfigureOperator(_) => 0,
            Command::Reseed { .. } => 1,
            Command::Player { .. } => 2,
            Command::Claim { .. } => 3,
        }
    }
    const COMMAND_VARIANTS: usize = 4;

    fn action_variant(action: &Action) -> usize {
        match action {
            Action::CreateWallet => 0,
            Action::SetBlocked { .. } => 1,
            Action::Deposit { .. } => 2,
            Action::Withdraw { .. } => 3,
            Action::OpenSession { .. } => 4,
            Action::CloseSession { .. } => 5,
            Action::Bet { .. } => 6,
            Action::Win { .. } => 7,
            Action::Rollback { .. } => 8,
            Action::CloseRound { .. } => 9,
            Action::Balance { .. } => 10,
            Action::SetLimit { .. } => 11,
            Action::SetSessionTimeLimit { .. } => 12,
            Action::SelfExclude { .. } => 13,
            Action::CoolOff { .. } => 14,
            Action::GrantBonus { .. } => 15,
            Action::ForfeitBonus { .. } => 16,
            Action::GrantSweeps { .. } => 17,
            Action::RequestRedemption { .. } => 18,
            Action::ApproveRedemption { .. } => 19,
            Action::RejectRedemption { .. } => 20,
            Action::Play { .. } => 21,
            Action::RotateSeeds { .. } => 22,
            Action::SessionInfo { .. } => 23,
            Action::RefreshSession { .. } => 24,
            Action::Payout { .. } => 25,
            Action::Lookup { .. } => 26,
            Action::RoundInfo { .. } => 27,
        }
    }
    const ACTION_VARIANTS: usize = 28;

    fn event_variant(event: &Event) -> usize {
        match event {
            Event::OperatorConfigured { .. } => 0,
            Event::WalletCreated { .. } => 1,
            Event::PlayerBlocked { .. } => 2,
            Event::Deposited { .. } => 3,
            Event::Withdrawn { .. } => 4,
            Event::SessionOpened { .. } => 5,
            Event::SessionClosed { .. } => 6,
            Event::BetPlaced { .. } => 7,
            Event::WinCredited { .. } => 8,
            Event::BetRolledBack { .. } => 9,
            Event::RollbackRecordedInAdvance { .. } => 10,
            Event::RoundSettled { .. } => 11,
            Event::LimitHit { .. } => 12,
            Event::LimitChanged { .. } => 13,
            Event::SessionTimeLimitChanged { .. } => 14,
            Event::SelfExcluded { .. } => 15,
            Event::CoolOffStarted { .. } => 16,
            Event::BonusGranted { .. } => 17,
            Event::BonusConverted { .. } => 18,
            Event::BonusForfeited { .. } => 19,
            Event::SweepsGranted { .. } => 20,
            Event::SweepsRedeemable { .. } => 21,
            Event::RedemptionRequested { .. } => 22,
            Event::RedemptionPaid { .. } => 23,
            Event::RedemptionRejected { .. } => 24,
            Event::RngReseeded => 25,
            Event::GamePlayed { .. } => 26,
            Event::SeedsRotated { .. } => 27,
            Event::AwardCredited { .. } => 28,
        }
    }
    const EVENT_VARIANTS: usize = 29;

    fn choice_variant(choice: &Choice) -> usize {
        match choice {
            Choice::Slot => 0,
            Choice::Roulette(_) => 1,
            Choice::Dice(_) => 2,
            Choice::Crash { .. } => 3,
        }
    }
    const CHOICE_VARIANTS: usize = 4;

    fn roulette_variant(bet: &RouletteBet) -> usize {
        match bet {
            RouletteBet::Straight(_) => 0,
            RouletteBet::Split(..) => 1,
            RouletteBet::Street(_) => 2,
            RouletteBet::Trio { .. } => 3,
            RouletteBet::Corner(_) => 4,
            RouletteBet::FirstFour => 5,
            RouletteBet::SixLine(_) => 6,
            RouletteBet::Column(_) => 7,
            RouletteBet::Dozen(_) => 8,
            RouletteBet::Red => 9,
            RouletteBet::Black => 10,
            RouletteBet::Odd => 11,
            RouletteBet::Even => 12,
            RouletteBet::Low => 13,
            RouletteBet::High => 14,
        }
    }
    const ROULETTE_VARIANTS: usize = 15;

    fn drawn_variant(drawn: &Drawn) -> usize {
        match drawn {
            Drawn::Slot(_) => 0,
            Drawn::Roulette { .. } => 1,
            Drawn::Dice { .. } => 2,
            Drawn::Crash { .. } => 3,
        }
    }
    const DRAWN_VARIANTS: usize = 4;

    fn assert_covers(what: &str, indices: impl IntoIterator<Item = usize>, variants: usize) {
        let mut covered = vec![false; variants];
        for index in indices {
            assert!(index < variants, "{what}: variant index {index} but only {variants} variants are counted; update the count");
            covered[index] = true;
        }
        let missing: Vec<usize> = covered.iter().enumerate().filter(|(_, seen)| !**seen).map(|(index, _)| index).collect();
        assert!(missing.is_empty(), "{what}: no sample of the variants numbered {missing:?}");
    }

    fn every_choice() -> Vec<Choice> {
        let mut choices = vec![Choice::Slot, Choice::Dice(DiceBet { target: 5_000, over: true }), Choice::Crash { target: 250 }];
        let bets = [
            RouletteBet::Straight(17),
            RouletteBet::Split(0, 3),
            RouletteBet::Street(11),
            RouletteBet::Trio { high: true },
            RouletteBet::Corner(32),
            RouletteBet::FirstFour,
            RouletteBet::SixLine(10),
            RouletteBet::Column(2),
            RouletteBet::Dozen(1),
            RouletteBet::Red,
            RouletteBet::Black,
            RouletteBet::Odd,
            RouletteBet::Even,
            RouletteBet::Low,
            RouletteBet::High,
        ];
        choices.extend(bets.map(Choice::Roulette));
        choices
    }

    fn sample_commands() -> Vec<Command> {
        let player = |action| Command::Player { operator: OperatorId(7), player: PlayerId(u64::MAX - 1), action };
        let config = OperatorConfig {
            operator: OperatorId(u32::MAX),
            sweepstakes: false,
            currencies: vec![CurrencySpec { currency: eur(), scale: 2 }, CurrencySpec { currency: Currency::SWEEPS_COINS, scale: 99 }],
            limit_increase_delay_ms: crate::command::LIMIT_INCREASE_DELAY_DEFAULT_MS,
            redemption_min_minor: 5_000,
        };
        let empty_config = OperatorConfig { currencies: Vec::new(), ..config.clone() };
        let terms = BonusTerms {
            bonus: bonus("welcome-1"),
            currency: eur(),
            amount: Amount(10_000),
            wagering_multiple: 35,
            max_bet: Amount(-1),
            duration_ms: 7 * 86_400_000,
            weights: vec![(game("lucky-lines"), 100), (game("roulette-eu"), 10)],
            default_weight_percent: 0,
        };
        let mut commands = vec![
            Command::ConfigureOperator(config),
            Command::ConfigureOperator(empty_config),
            Command::Reseed { entropy: [0xA5; 32] },
            Command::Claim { operator: OperatorId(2), key: tx("DPabcdefdeposit-1"), player: PlayerId(u64::MAX) },
            player(Action::CreateWallet),
            player(Action::SetBlocked { blocked: true }),
            player(Action::SetBlocked { blocked: false }),
            player(Action::Deposit { tx: tx("dep-1"), currency: eur(), amount: Amount(i64::MAX) }),
            player(Action::Withdraw { tx: tx("wd-1"), currency: Currency::GOLD_COINS, amount: Amount(i64::MIN) }),
            player(Action::OpenSession { game: game("lucky-lines"), currency: eur(), duration_ms: 3_600_000, locale: None }),
            player(Action::OpenSession {
                game: game("lucky-lines"),
                currency: eur(),
                duration_ms: 3_600_000,
                locale: Some(crate::session::Locale::new("mt", "EN").expect("a valid locale")),
            }),
            player(Action::SessionInfo { session: SessionId(7) }),
            player(Action::RefreshSession { session: SessionId(u64::MAX) }),
            player(Action::Payout {
                tx: tx("pay-1"),
                round: Some(round("r-1")),
                game: Some(game("g")),
                currency: eur(),
                bet: Some(tx("ref-1")),
                amount: Stake::Split { cash: Amount(5), bonus: Amount(0), promo: Amount(1) },
                close_round: false,
                award: true,
                claim: true,
            }),
            player(Action::Payout {
                tx: tx("pay-2"),
                round: None,
                game: None,
                currency: eur(),
                bet: None,
                amount: Stake::Auto(Amount(0)),
                close_round: true,
                award: false,
                claim: false,
            }),
            player(Action::Lookup { txs: vec![tx("a"), tx(&"z".repeat(48))] }),
            player(Action::RoundInfo { round: round("r-1") }),
            player(Action::CloseSession { session: SessionId(3 << 40 | 9) }),
            player(Action::Bet {
                tx: tx("bet-1"),
                session: SessionId(1),
                round: round("r-1"),
                game: Some(game("g")),
                currency: eur(),
                stake: Stake::Auto(Amount(100)),
                alias: None,
            }),
            player(Action::Bet {
                tx: tx(&"b".repeat(40)),
                session: SessionId(1),
                round: round("~!"),
                game: None,
                currency: eur(),
                stake: Stake::Split { cash: Amount(1), bonus: Amount(0), promo: Amount(-3) },
                alias: Some(tx("ref-1")),
            }),
            player(Action::Win { tx: tx("win-1"), bet: tx("bet-1"), amount: Stake::Auto(Amount(0)), close_round: true }),
            player(Action::Rollback { tx: tx("rb-1"), bet: tx("bet-1"), currency: eur() }),
            player(Action::CloseRound { round: round("r-1") }),
            player(Action::Balance { currency: Currency::new("USDT1234").expect("a valid test currency") }),
            player(Action::SetLimit {
                source: LimitSource::Player,
                kind: LimitKind::Deposit,
                period: LimitPeriod::Day,
                currency: eur(),
                amount: Some(Amount(5_000)),
            }),
            player(Action::SetLimit {
                source: LimitSource::Operator,
                kind: LimitKind::Loss,
                period: LimitPeriod::Week,
                currency: eur(),
                amount: None,
            }),
            player(Action::SetLimit {
                source: LimitSource::Player,
                kind: LimitKind::Wager,
                period: LimitPeriod::Month,
                currency: eur(),
                amount: Some(Amount(-5)),
            }),
            player(Action::SetSessionTimeLimit { source: LimitSource::Operator, duration_ms: Some(60_000) }),
            player(Action::SetSessionTimeLimit { source: LimitSource::Player, duration_ms: None }),
            player(Action::SelfExclude { until_ms: Some(u64::MAX) }),
            player(Action::SelfExclude { until_ms: None }),
            player(Action::CoolOff { duration_ms: 86_400_000 }),
            player(Action::GrantBonus { tx: tx("bonus-tx"), terms: terms.clone() }),
            // Longer than the engine accepts: refused on apply, so it must still travel in the log.
            player(Action::GrantBonus {
                tx: tx("bonus-tx-2"),
                terms: BonusTerms { weights: vec![(game("g"), 255); crate::bonus::BONUS_WEIGHTS_MAX + 3], ..terms },
            }),
            player(Action::ForfeitBonus { bonus: bonus("welcome-1") }),
            player(Action::RequestRedemption { redemption: redemption("red-1"), amount: Amount(10_000) }),
            player(Action::ApproveRedemption { redemption: redemption("red-1") }),
            player(Action::RejectRedemption { redemption: redemption("red-2") }),
            player(Action::RotateSeeds { client_seed: ExternalId::new("my-lucky-seed").expect("a valid test id") }),
        ];
        for kind in [SweepsGrantKind::PurchaseBonus, SweepsGrantKind::DailyReward, SweepsGrantKind::Promotion, SweepsGrantKind::MailIn] {
            commands.push(player(Action::GrantSweeps { tx: tx("sweeps"), kind, amount: Amount(500), playthrough_multiple: 1 }));
        }
        for (at, choice) in every_choice().into_iter().enumerate() {
            commands.push(player(Action::Play {
                tx: tx(&format!("play-{at}")),
                session: SessionId(at as u64),
                currency: Currency::SWEEPS_COINS,
                stake: Amount(20),
                choice,
                fair: at % 2 == 0,
            }));
        }
        commands
    }

    fn sample_events() -> Vec<Event> {
        let player = PlayerId(12_345);
        let slot = Drawn::Slot(SlotOutcome { spins: vec![[0, 1, 2, 3, 4]; SLOT_SPINS_MAX] });
        let drawn = [slot, Drawn::Roulette { pocket: 36 }, Drawn::Dice { roll: 9_999 }, Drawn::Crash { point: u32::MAX }];
        let mut events = vec![
            Event::OperatorConfigured { operator: OperatorId(1) },
            Event::WalletCreated { player, operator: OperatorId(1) },
            Event::PlayerBlocked { player, blocked: true },
            Event::Deposited { player, tx: tx("dep-1"), currency: eur(), amount: Money::MAX },
            Event::Withdrawn { player, tx: tx("wd-1"), currency: eur(), amount: Money::ZERO },
            Event::SessionOpened { player, session: SessionId(5), game: game("dice"), currency: eur(), expires_ms: 99 },
            Event::SessionClosed { player, session: SessionId(5) },
            Event::BetPlaced { player, tx: tx("bet-1"), round: round("r"), game: game("g"), currency: eur(), stake: pockets(1, 2, 3) },
            Event::WinCredited {
                player,
                tx: tx("win-1"),
                bet: tx("bet-1"),
                round: round("r"),
                game: game("g"),
                currency: eur(),
                win: pockets(4, 0, 6),
            },
            Event::BetRolledBack { player, tx: tx("rb-1"), bet: tx("bet-1"), round: round("r"), currency: eur(), refund: pockets(1, 2, 3) },
            Event::RollbackRecordedInAdvance { player, tx: tx("rb-2"), bet: tx("bet-9") },
            Event::RoundSettled {
                player,
                round: round("r"),
                game: game("g"),
                currency: eur(),
                stake: money(6),
                win: money(10),
                bet_count: 2,
            },
            Event::LimitHit { player, kind: LimitKind::Loss, period: LimitPeriod::Week, currency: eur(), limit: money(1_000) },
            Event::LimitChanged {
                player,
                source: LimitSource::Player,
                kind: LimitKind::Deposit,
                period: LimitPeriod::Day,
                currency: eur(),
                amount: Some(money(500)),
                effective_ms: 86_400_000,
            },
            Event::LimitChanged {
                player,
                source: LimitSource::Operator,
                kind: LimitKind::Wager,
                period: LimitPeriod::Month,
                currency: eur(),
                amount: None,
                effective_ms: 0,
            },
            Event::SessionTimeLimitChanged { player, source: LimitSource::Player, duration_ms: Some(60_000), effective_ms: 1 },
            Event::SessionTimeLimitChanged { player, source: LimitSource::Operator, duration_ms: None, effective_ms: 2 },
            Event::SelfExcluded { player, until_ms: u64::MAX },
            Event::CoolOffStarted { player, until_ms: 3 },
            Event::BonusGranted {
                player,
                tx: tx("bonus-tx"),
                bonus: bonus("welcome-1"),
                currency: eur(),
                amount: money(10_000),
                wagering_required: money(350_000),
            },
            Event::BonusConverted { player, bonus: bonus("welcome-1"), currency: eur(), amount: money(7) },
            Event::BonusForfeited { player, bonus: bonus("welcome-1"), currency: eur(), amount: money(8) },
            Event::SweepsRedeemable { player, amount: money(9) },
            Event::RedemptionRequested { player, redemption: redemption("red-1"), amount: money(10) },
            Event::RedemptionPaid { player, redemption: redemption("red-1"), amount: money(10) },
            Event::RedemptionRejected { player, redemption: redemption("red-2"), amount: money(11) },
            Event::RngReseeded,
            Event::SeedsRotated { player, revealed: Some([1; 32]), server_seed_hash: [2; 32] },
            Event::SeedsRotated { player, revealed: None, server_seed_hash: [3; 32] },
            Event::AwardCredited {
                player,
                tx: tx("promo-1"),
                round: Some(round("free-spins-1")),
                game: None,
                currency: eur(),
                amount: Pockets { cash: Money::ZERO, bonus: Money::ZERO, promo: Money::MAX },
            },
        ];
        for kind in [SweepsGrantKind::PurchaseBonus, SweepsGrantKind::DailyReward, SweepsGrantKind::Promotion, SweepsGrantKind::MailIn] {
            events.push(Event::SweepsGranted { player, tx: tx("sweeps"), kind, amount: money(500), playthrough: money(500) });
        }
        for (at, choice) in every_choice().into_iter().enumerate() {
            events.push(Event::GamePlayed {
                player,
                tx: tx(&format!("play-{at}")),
                game: choice.kind(),
                version: 1,
                choice,
                stake: money(20),
                drawn: drawn[at % drawn.len()].clone(),
                win: money(at as u64),
                fair: (at % 2 == 0).then_some((at as u64, [at as u8; 32])),
            });
        }
        events
    }

    fn batch_bytes(commands: &[Command]) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_batch(CTX, commands, &mut bytes);
        bytes
    }

    fn events_bytes(events: &[Event]) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_events(CTX, events, &mut bytes);
        bytes
    }

    /// The samples name every variant of commands, actions, events and
    /// their nested enums.
    #[test]
    fn samples_cover_every_variant() {
        let commands = sample_commands();
        let actions: Vec<&Action> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Player { action, .. } => Some(action),
                _ => None,
            })
            .collect();
        let events = sample_events();
        assert_covers("Command", commands.iter().map(command_variant), COMMAND_VARIANTS);
        assert_covers("Action", actions.iter().map(|a| action_variant(a)), ACTION_VARIANTS);
        assert_covers("Event", events.iter().map(event_variant), EVENT_VARIANTS);
        let choices = || every_choice().into_iter();
        assert_covers("Choice", choices().map(|c| choice_variant(&c)), CHOICE_VARIANTS);
        let roulette = choices().filter_map(|c| match c {
            Choice::Roulette(bet) => Some(roulette_variant(&bet)),
            _ => None,
        });
        assert_covers("RouletteBet", roulette, ROULETTE_VARIANTS);
        let drawn = events.iter().filter_map(|e| match e {
            Event::GamePlayed { drawn, .. } => Some(drawn_variant(drawn)),
            _ => None,
        });
        assert_covers("Drawn", drawn, DRAWN_VARIANTS);
    }

    #[test]
    fn every_command_and_action_round_trips_in_a_batch() {
        let commands = sample_commands();
        let bytes = batch_bytes(&commands);
        assert_eq!(decode_batch(&bytes), Ok((CTX, commands.clone())));
        for command in &commands {
            let one = batch_bytes(std::slice::from_ref(command));
            assert_eq!(decode_batch(&one), Ok((CTX, vec![command.clone()])), "{command:?}");
        }
    }

    #[test]
    fn every_event_round_trips_in_a_journal_record() {
        let events = sample_events();
        let bytes = events_bytes(&events);
        assert_eq!(decode_events(&bytes), Ok((CTX, events.clone())));
        for event in &events {
            let one = events_bytes(std::slice::from_ref(event));
            assert_eq!(decode_events(&one), Ok((CTX, vec![event.clone()])), "{event:?}");
        }
    }

    #[test]
    fn empty_lists_round_trip() {
        let ctx = Context { index: u64::MAX, timestamp_ms: 0 };
        let mut bytes = Vec::new();
        encode_batch(ctx, &[], &mut bytes);
        assert_eq!(bytes.len(), 1 + 8 + 8 + 4);
        assert_eq!(decode_batch(&bytes), Ok((ctx, Vec::new())));
        bytes.clear();
        encode_events(ctx, &[], &mut bytes);
        assert_eq!(decode_events(&bytes), Ok((ctx, Vec::new())));
    }

    #[test]
    fn encoding_appends_to_the_buffer() {
        let mut bytes = vec![9, 9];
        encode_batch(CTX, &[Command::Reseed { entropy: [0; 32] }], &mut bytes);
        assert_eq!(&bytes[..2], &[9, 9]);
        assert_eq!(decode_batch(&bytes[2..]).map(|(ctx, _)| ctx), Ok(CTX));
    }

    /// Pins the layout: tags and field order are part of the on-disk format.
    #[test]
    fn the_layout_is_stable() {
        let ctx = Context { index: 1, timestamp_ms: 2 };
        let mut bytes = Vec::new();
        let commands = [
            Command::Reseed { entropy: [0xAB; 32] },
            Command::Player { operator: OperatorId(3), player: PlayerId(4), action: Action::CreateWallet },
        ];
        encode_batch(ctx, &commands, &mut bytes);
        let mut expected = vec![2, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2];
        expected.extend([0xAB; 32]);
        expected.extend([3, 3, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(bytes, expected);

        bytes.clear();
        encode_events(ctx, &[Event::RngReseeded, Event::SessionClosed { player: PlayerId(5), session: SessionId(6) }], &mut bytes);
        let mut expected = vec![2, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 26, 7];
        expected.extend([5, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes, expected);
    }

    /// `COMMAND_BYTES_MIN` bounds command counts, so no command may be shorter.
    #[test]
    fn no_command_is_shorter_than_the_bound_on_counts() {
        let header = batch_bytes(&[]).len();
        let sizes: Vec<usize> = sample_commands().iter().map(|c| batch_bytes(std::slice::from_ref(c)).len() - header).collect();
        assert_eq!(sizes.iter().min(), Some(&COMMAND_BYTES_MIN));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let batch = batch_bytes(&sample_commands());
        for len in 0..batch.len() {
            assert!(decode_batch(&batch[..len]).is_err(), "batch truncated to {len} of {} bytes decoded", batch.len());
        }
        let events = events_bytes(&sample_events());
        for len in 0..events.len() {
            assert!(decode_events(&events[..len]).is_err(), "events truncated to {len} of {} bytes decoded", events.len());
        }
    }

    #[test]
    fn another_version_is_refused() {
        let mut batch = batch_bytes(&sample_commands());
        let mut events = events_bytes(&sample_events());
        for version in [0u8, 1, 3, 255] {
            batch[0] = version;
            events[0] = version;
            assert_eq!(decode_batch(&batch), Err(DecodeError::Version(u16::from(version))));
            assert_eq!(decode_events(&events), Err(DecodeError::Version(u16::from(version))));
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut batch = batch_bytes(&sample_commands());
        batch.push(0);
        assert_eq!(decode_batch(&batch), Err(DecodeError::Trailing { extra: 1 }));
        let mut events = events_bytes(&sample_events());
        events.extend([26, 26]);
        assert_eq!(decode_events(&events), Err(DecodeError::Trailing { extra: 2 }));
    }

    /// The header of an encoding with its count replaced, and `body` after it.
    fn with_count(mut header: Vec<u8>, count: u32, body: &[u8]) -> Vec<u8> {
        header.truncate(1 + 8 + 8);
        header.extend(count.to_le_bytes());
        header.extend(body);
        header
    }

    #[test]
    fn a_count_the_input_cannot_hold_is_refused_before_allocating() {
        let batch_header = batch_bytes(&[]);
        let events_header = events_bytes(&[]);
        // One CreateWallet command's worth of bytes, but counts that claim more.
        let body = [3, 3, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1];
        let count_offset = 1 + 8 + 8 + 4;
        let refused = |what| Some(DecodeError::Invalid { what, offset: count_offset });
        for count in [2, BATCH_COMMANDS_MAX as u32, BATCH_COMMANDS_MAX as u32 + 1, u32::MAX] {
            assert_eq!(decode_batch(&with_count(batch_header.clone(), count, &body)).err(), refused("command count"), "{count}");
        }
        assert!(decode_batch(&with_count(batch_header.clone(), 1, &body)).is_ok());
        for count in [15, EVENTS_PER_BATCH_MAX as u32, u32::MAX] {
            assert_eq!(decode_events(&with_count(events_header.clone(), count, &body)).err(), refused("event count"), "{count}");
        }
        // A count within the input but above the limit is refused too.
        let many = vec![26u8; EVENTS_PER_BATCH_MAX + 1];
        assert_eq!(decode_events(&with_count(events_header, many.len() as u32, &many)).err(), refused("event count"));

        // Lists inside a command: a bonus with a billion weights in a few bytes.
        let grant = Command::Player {
            operator: OperatorId(1),
            player: PlayerId(1),
            action: Action::GrantBonus {
                tx: tx("t"),
                terms: BonusTerms {
                    bonus: bonus("b"),
                    currency: eur(),
                    amount: Amount(1),
                    wagering_multiple: 1,
                    max_bet: Amount(1),
                    duration_ms: 1,
                    weights: Vec::new(),
                    default_weight_percent: 0,
                },
            },
        };
        let mut bytes = batch_bytes(&[grant]);
        let weights_at = bytes.len() - 1 - 4;
        bytes[weights_at..weights_at + 4].copy_from_slice(&1_000_000_000u32.to_le_bytes());
        assert_eq!(decode_batch(&bytes), Err(DecodeError::Invalid { what: "bonus weight count", offset: weights_at + 4 }));
    }

    #[test]
    fn unknown_tags_are_refused() {
        let header = batch_bytes(&[]);
        assert_eq!(decode_batch(&with_count(header.clone(), 1, &[0; 14])), Err(DecodeError::Invalid { what: "command tag", offset: 22 }));
        let mut action = vec![3, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        for tag in [0, 29, 255] {
            action.push(tag);
            assert_eq!(decode_batch(&with_count(header.clone(), 1, &action)), Err(DecodeError::Invalid { what: "action tag", offset: 35 }));
            action.pop();
        }
        let header = events_bytes(&[]);
        for tag in [0, 30, 255] {
            assert_eq!(decode_events(&with_count(header.clone(), 1, &[tag])), Err(DecodeError::Invalid { what: "event tag", offset: 22 }));
        }
    }

    #[test]
    fn invalid_fields_are_refused() {
        // An amount above Money::MAX in an event.
        let mut bytes = events_bytes(&[Event::SweepsRedeemable { player: PlayerId(1), amount: Money::MAX }]);
        let at = bytes.len() - 8;
        bytes[at..].copy_from_slice(&(Money::MAX.minor() + 1).to_le_bytes());
        assert!(matches!(decode_events(&bytes), Err(DecodeError::Invalid { what: "amount", .. })));

        // A lowercase or non-canonical currency, an id with a space, an empty or over-long id, a flag of 2, a bad limit source.
        let deposit = |action| batch_bytes(&[Command::Player { operator: OperatorId(1), player: PlayerId(1), action }]);
        let bytes = deposit(Action::Balance { currency: eur() });
        let mut bad = bytes.clone();
        let at = bad.len() - 8;
        bad[at] = b'e';
        assert!(matches!(decode_batch(&bad), Err(DecodeError::Invalid { what: "currency", .. })));
        let mut bad = bytes.clone();
        *bad.last_mut().expect("a currency") = b'R';
        assert!(matches!(decode_batch(&bad), Err(DecodeError::Invalid { what: "currency", .. })), "a letter after the padding");

        let bytes = deposit(Action::CloseRound { round: round("ab") });
        let mut bad = bytes.clone();
        *bad.last_mut().expect("an id") = b' ';
        assert!(matches!(decode_batch(&bad), Err(DecodeError::Invalid { what: "id", .. })));
        let mut bad = bytes.clone();
        let at = bad.len() - 3;
        bad[at] = 0;
        assert!(decode_batch(&bad).is_err(), "an empty id");
        bad[at] = 49;
        assert!(matches!(decode_batch(&bad), Err(DecodeError::Invalid { what: "id length", .. })));

        let mut bad = deposit(Action::SetBlocked { blocked: true });
        *bad.last_mut().expect("a flag") = 2;
        assert!(matches!(decode_batch(&bad), Err(DecodeError::Invalid { what: "flag", .. })));

        let mut bad = deposit(Action::SetSessionTimeLimit { source: LimitSource::Player, duration_ms: None });
        let at = bad.len() - 2;
        bad[at] = 3;
        assert!(matches!(decode_batch(&bad), Err(DecodeError::Invalid { what: "limit source", .. })));
    }

    #[test]
    fn a_slot_round_of_too_many_spins_is_refused() {
        let event = |spins| Event::GamePlayed {
            player: PlayerId(1),
            tx: tx("t"),
            game: GameKind::Slot,
            version: 1,
            choice: Choice::Slot,
            stake: money(20),
            drawn: Drawn::Slot(SlotOutcome { spins }),
            win: Money::ZERO,
            fair: None,
        };
        let mut bytes = events_bytes(&[event(vec![[0; REELS]])]);
        let count_at = bytes.len() - 1 - 8 - REELS - 1;
        assert_eq!(bytes[count_at], 1);
        for count in [0, SLOT_SPINS_MAX as u8 + 1] {
            bytes[count_at] = count;
            assert_eq!(decode_events(&bytes), Err(DecodeError::Invalid { what: "slot spin count", offset: count_at + 1 }));
        }
    }

    /// Batches a real shard applies, and the events it emits, round-trip;
    /// no command emits more events than `EVENTS_PER_COMMAND_MAX`.
    #[test]
    fn what_a_shard_applies_and_emits_round_trips() {
        use crate::reply::Reply;
        use crate::shard::{Shard, ShardConfig};

        let mut shard = Shard::new(ShardConfig::new(3));
        let mut index = 0;
        let mut all_events = Vec::new();
        let mut apply = |shard: &mut Shard, commands: Vec<Command>| {
            index += 1;
            let ctx = Context { index, timestamp_ms: 1_795_521_600_000 + index * 1_000 };
            let bytes = batch_bytes_at(ctx, &commands);
            assert_eq!(decode_batch(&bytes), Ok((ctx, commands.clone())));
            let (mut outcomes, mut events) = (Vec::new(), Vec::new());
            shard.apply_batch(ctx, &commands, &mut outcomes, &mut events);
            assert!(events.len() <= commands.len() * EVENTS_PER_COMMAND_MAX);
            let mut record = Vec::new();
            encode_events(ctx, &events, &mut record);
            assert_eq!(decode_events(&record), Ok((ctx, events.clone())));
            all_events.extend(events);
            outcomes
        };
        let player = |action| Command::Player { operator: OperatorId(1), player: PlayerId(1), action };
        let config = OperatorConfig {
            operator: OperatorId(1),
            sweepstakes: false,
            currencies: vec![CurrencySpec { currency: eur(), scale: 2 }],
            limit_increase_delay_ms: 1_000,
            redemption_min_minor: 0,
        };
        let outcomes = apply(
            &mut shard,
            vec![
                Command::ConfigureOperator(config),
                Command::Reseed { entropy: [7; 32] },
                player(Action::CreateWallet),
                player(Action::Deposit { tx: tx("dep-1"), currency: eur(), amount: Amount(1_000_000) }),
                player(Action::SetLimit {
                    source: LimitSource::Player,
                    kind: LimitKind::Wager,
                    period: LimitPeriod::Day,
                    currency: eur(),
                    amount: Some(Amount(500_000)),
                }),
                player(Action::RotateSeeds { client_seed: ExternalId::new("seed").expect("a valid test id") }),
                player(Action::OpenSession { game: game(crate::games::DICE_ID), currency: eur(), duration_ms: 3_600_000, locale: None }),
            ],
        );
        let Some(Ok(Reply::SessionOpened { session, .. })) = outcomes.last() else { panic!("the session opens: {outcomes:?}") };
        let session = *session;
        let mut commands: Vec<Command> = (0..20)
            .map(|at| {
                player(Action::Play {
                    tx: tx(&format!("play-{at}")),
                    session,
                    currency: eur(),
                    stake: Amount(100),
                    choice: Choice::Dice(DiceBet { target: 5_000, over: at % 2 == 0 }),
                    fair: at % 3 == 0,
                })
            })
            .collect();
        commands.extend([
            player(Action::Bet {
                tx: tx("bet-1"),
                session,
                round: round("r-1"),
                game: Some(game(crate::games::DICE_ID)),
                currency: eur(),
                stake: Stake::Auto(Amount(200)),
                alias: None,
            }),
            player(Action::Win { tx: tx("win-1"), bet: tx("bet-1"), amount: Stake::Auto(Amount(300)), close_round: true }),
            player(Action::Rollback { tx: tx("rb-1"), bet: tx("never-seen"), currency: eur() }),
            player(Action::Play {
                tx: tx("too-big"),
                session,
                currency: eur(),
                stake: Amount(900_000),
                choice: Choice::Dice(DiceBet { target: 5_000, over: true }),
                fair: false,
            }),
            player(Action::CloseSession { session }),
        ]);
        apply(&mut shard, commands);
        let kinds: Vec<usize> = all_events.iter().map(event_variant).collect();
        for expected in [
            event_variant(&Event::RngReseeded),
            event_variant(&Event::LimitHit {
                player: PlayerId(1),
                kind: LimitKind::Wager,
                period: LimitPeriod::Day,
                currency: eur(),
                limit: Money::ZERO,
            }),
        ] {
            assert!(kinds.contains(&expected), "the scenario emits event variant {expected}: {all_events:?}");
        }
        assert!(all_events.iter().any(|e| matches!(e, Event::GamePlayed { fair: Some(_), .. })));
    }

    fn batch_bytes_at(ctx: Context, commands: &[Command]) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_batch(ctx, commands, &mut bytes);
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Corrupted bytes never panic, and whatever still decodes is
        /// canonical: it encodes back to the very same bytes.
        #[test]
        fn corrupted_entries_are_refused_or_canonical(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            events in any::<bool>(),
        ) {
            let mut bytes = if events { events_bytes(&sample_events()) } else { batch_bytes(&sample_commands()) };
            for (at, value) in edits {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            if events {
                if let Ok((ctx, decoded)) = decode_events(&bytes) {
                    let mut again = Vec::new();
                    encode_events(ctx, &decoded, &mut again);
                    prop_assert_eq!(again, bytes);
                }
            } else if let Ok((ctx, decoded)) = decode_batch(&bytes) {
                let mut again = Vec::new();
                encode_batch(ctx, &decoded, &mut again);
                prop_assert_eq!(again, bytes);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..256), version in 0u8..3) {
            if let Some(first) = bytes.first_mut() {
                *first = version;
            }
            let _ = decode_batch(&bytes);
            let _ = decode_events(&bytes);
        }
    }
}
