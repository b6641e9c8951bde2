package projections

import (
	"context"
	"database/sql"
	"errors"
	"sort"
	"strconv"
)

// The activity table's time bookkeeping: time_max and time_min (see Activity.Schema) let a
// time window map to a position range, though events are recorded nearly, not strictly, in
// time order.

// activityTimes is what a transaction remembers of the activity rows it wrote (see
// keepTimeBounds).
type activityTimes struct {
	lastActivity    uint64 // position of the last activity row written in the transaction, 0: none
	lastActivityMax int64  // its time_max
	// recentActivity are the last activity rows written in the transaction, oldest first,
	// with their time_min as the table holds it (see keepTimeBounds).
	recentActivity []activityBound
}

// activityBound is an activity row's position and time_min.
type activityBound struct {
	pos  uint64
	tmin int64
}

// keepTimeBounds prepares the row at position pos with time t (rows are added in position
// order): it returns the row's time_max and lowers time_min of the newer-timed rows before
// it to t. Only the primary key is used, so Apply needs no secondary index; the rows to
// lower are the few whose time is later than t (events committed slightly out of time order).
//
// The transaction remembers the rows it wrote (the last time_max, and a window of the last
// rows with their time_min), so that a batch written in order reads nothing back. Memory is
// only trusted for a later position than the last row written: an event applied again (after
// a failed attempt rolled back to its savepoint) forgets it and reads the table.
func keepTimeBounds(ctx context.Context, tx *sql.Tx, pos uint64, t int64) (int64, error) {
	st := stateOf(ctx, tx)
	ts := &st.activity
	if ts.lastActivity == 0 || pos <= ts.lastActivity {
		if len(st.activityRows) > 0 { // the table must hold every row before it is read
			if err := flushActivity(ctx, tx); err != nil {
				return 0, err
			}
		}
		ts.lastActivity, ts.recentActivity = 0, ts.recentActivity[:0]
	}
	timeMax, err := timeBounds(ctx, tx, st, pos, t)
	if err != nil {
		ts.lastActivity, ts.recentActivity = 0, ts.recentActivity[:0]
		return 0, err
	}
	ts.lastActivity, ts.lastActivityMax = pos, timeMax
	if len(ts.recentActivity) == recentActivityWindow {
		ts.recentActivity = append(ts.recentActivity[:0], ts.recentActivity[1:]...)
	}
	ts.recentActivity = append(ts.recentActivity, activityBound{pos: pos, tmin: t})
	return timeMax, nil
}

// recentActivityWindow is how many of its last activity rows a transaction remembers.
const recentActivityWindow = 256

func timeBounds(ctx context.Context, tx *sql.Tx, state *txState, pos uint64, t int64) (int64, error) {
	ts := &state.activity
	var prevMax int64
	if ts.lastActivity != 0 {
		prevMax = ts.lastActivityMax
	} else {
		err := txScan(ctx, tx, `SELECT time_max FROM activity WHERE position < ? ORDER BY position DESC LIMIT 1`, []any{pos}, &prevMax)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return t, nil
		case err != nil:
			return 0, err
		}
	}
	if prevMax <= t {
		return t, nil // in order: no earlier row has a later time, so no time_min is above t
	}
	// time_min never decreases with the position, so the rows to lower are those from the
	// first one whose time_min is above t up to this one: found in the remembered rows, newest
	// first, then in the table, and lowered with one statement.
	first := uint64(0)
	i := len(ts.recentActivity) - 1
	for ; i >= 0 && ts.recentActivity[i].tmin > t; i-- {
		first = ts.recentActivity[i].pos
	}
	if i < 0 {
		upper := pos
		if first != 0 {
			upper = first
		}
		// Then the rows kept in memory before them (Activity.writeBatch), newest first.
		rows := state.activityRows
		k := sort.Search(len(rows), func(k int) bool { return rows[k].pos >= upper }) - 1
		searching := true
		for ; k >= 0; k-- {
			if tmin, _ := rows[k].args[activityTimeMin].(int64); tmin <= t {
				searching = false
				break
			}
			first, upper = rows[k].pos, rows[k].pos
		}
		const chunk = 64
		for searching {
			st, err := prepared(ctx, tx, `SELECT position, time_min FROM activity WHERE position < ? ORDER BY position DESC LIMIT `+strconv.Itoa(chunk))
			if err != nil {
				return 0, err
			}
			rows, err := st.QueryContext(ctx, upper)
			if err != nil {
				return 0, err
			}
			n := 0
			for rows.Next() {
				var p uint64
				var m int64
				if err := rows.Scan(&p, &m); err != nil {
					rows.Close()
					return 0, err
				}
				n++
				if m <= t {
					searching = false
					break
				}
				first, upper = p, p
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return 0, err
			}
			if n < chunk {
				searching = false
			}
		}
	}
	if first == 0 {
		return prevMax, nil
	}
	// The rows kept in memory (Activity.writeBatch) are lowered there, those in the table with
	// one statement.
	rows := state.activityRows
	for k := len(rows) - 1; k >= 0 && rows[k].pos >= first; k-- {
		rows[k].args[activityTimeMin] = t
	}
	if len(rows) == 0 || first < rows[0].pos {
		if err := txExec(ctx, tx, `UPDATE activity SET time_min = ? WHERE position >= ? AND position < ?`, t, first, pos); err != nil {
			return 0, err
		}
	}
	for j := i + 1; j < len(ts.recentActivity); j++ {
		ts.recentActivity[j].tmin = t
	}
	return prevMax, nil
}
