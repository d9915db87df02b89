mod support;
use support::*;

#[test]
fn a_bet_and_a_win_move_money_once() {
    let mut world = World::new();
    world.funded(1, 10_000);
    let session = world.session(1);
    world.bet(1, session, "b1", "r1", 300).expect("bet");
    assert_eq!(world.cash(1), 9_700);
    world.win(1, "w1", "b1", 500, true).expect("win");
    assert_eq!(world.cash(1), 10_200);
    let again = world.win(1, "w1", "b1", 500, true);
    assert!(replayed(&again));
    assert_eq!(world.cash(1), 10_200);
}
