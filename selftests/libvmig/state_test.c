// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The migration state table (vmig_state_next/path) against an independent
 * model: the arcs a driver must implement for its migration flags, as the
 * kernel's vfio_mig_get_next_state() documents them.  For every pair of
 * states and every valid flag combination, a path must use only those arcs,
 * end at its target and be a shortest path in that arc graph; requests the
 * kernel refuses must give -EINVAL.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "kselftest_harness.h"
#include "vmig.h"

#define NR VMIG_STATE_NR
/* Enum constants are ints in C; the harness compares with their types. */
#define ST(x) ((enum vmig_dev_state)(x))

/* Out-of-range values to try as states, besides ERROR. */
static const unsigned int bad_states[] = { NR, NR + 1, 255, 0x7fffffff,
					   0xffffffff };

struct model {
	uint32_t flags;
	bool supported[NR];
	bool arc[NR][NR];
	int dist[NR][NR];	/* -1: unreachable */
};

static void add_arc(struct model *m, enum vmig_dev_state from,
		    enum vmig_dev_state to)
{
	m->arc[from][to] = true;
}

static void build_model(struct model *m, uint32_t flags)
{
	bool p2p = flags & VMIG_MIG_P2P;
	bool pre = flags & VMIG_MIG_PRE_COPY;
	unsigned int s, t, queue[NR], head, tail;

	memset(m, 0, sizeof(*m));
	m->flags = flags;

	m->supported[VMIG_STATE_STOP] = true;
	m->supported[VMIG_STATE_RUNNING] = true;
	m->supported[VMIG_STATE_STOP_COPY] = true;
	m->supported[VMIG_STATE_RESUMING] = true;
	m->supported[VMIG_STATE_RUNNING_P2P] = p2p;
	m->supported[VMIG_STATE_PRE_COPY] = pre;
	m->supported[VMIG_STATE_PRE_COPY_P2P] = p2p && pre;

	/* Always. */
	add_arc(m, VMIG_STATE_RESUMING, VMIG_STATE_STOP);
	add_arc(m, VMIG_STATE_STOP, VMIG_STATE_RESUMING);
	add_arc(m, VMIG_STATE_STOP, VMIG_STATE_STOP_COPY);
	add_arc(m, VMIG_STATE_STOP_COPY, VMIG_STATE_STOP);

	if (p2p) {
		add_arc(m, VMIG_STATE_RUNNING, VMIG_STATE_RUNNING_P2P);
		add_arc(m, VMIG_STATE_RUNNING_P2P, VMIG_STATE_RUNNING);
		add_arc(m, VMIG_STATE_RUNNING_P2P, VMIG_STATE_STOP);
		add_arc(m, VMIG_STATE_STOP, VMIG_STATE_RUNNING_P2P);
	} else {
		add_arc(m, VMIG_STATE_RUNNING, VMIG_STATE_STOP);
		add_arc(m, VMIG_STATE_STOP, VMIG_STATE_RUNNING);
	}

	if (pre && !p2p) {
		add_arc(m, VMIG_STATE_RUNNING, VMIG_STATE_PRE_COPY);
		add_arc(m, VMIG_STATE_PRE_COPY, VMIG_STATE_RUNNING);
		add_arc(m, VMIG_STATE_PRE_COPY, VMIG_STATE_STOP_COPY);
	}
	if (pre && p2p) {
		add_arc(m, VMIG_STATE_PRE_COPY, VMIG_STATE_RUNNING);
		add_arc(m, VMIG_STATE_PRE_COPY, VMIG_STATE_PRE_COPY_P2P);
		add_arc(m, VMIG_STATE_PRE_COPY_P2P, VMIG_STATE_PRE_COPY);
		add_arc(m, VMIG_STATE_PRE_COPY_P2P, VMIG_STATE_RUNNING_P2P);
		add_arc(m, VMIG_STATE_PRE_COPY_P2P, VMIG_STATE_STOP_COPY);
		add_arc(m, VMIG_STATE_RUNNING, VMIG_STATE_PRE_COPY);
		add_arc(m, VMIG_STATE_RUNNING_P2P, VMIG_STATE_PRE_COPY_P2P);
	}

	/* Breadth-first search from every state. */
	for (s = 0; s < NR; s++) {
		for (t = 0; t < NR; t++)
			m->dist[s][t] = -1;
		m->dist[s][s] = 0;
		head = tail = 0;
		queue[tail++] = s;
		while (head < tail) {
			unsigned int u = queue[head++];

			for (t = 0; t < NR; t++) {
				if (m->arc[u][t] && m->dist[s][t] < 0) {
					m->dist[s][t] = m->dist[s][u] + 1;
					queue[tail++] = t;
				}
			}
		}
	}
}

/* Whether the kernel accepts a request from cur to target at all. */
static bool model_allows(const struct model *m, unsigned int cur,
			 unsigned int target)
{
	if (cur >= NR || target >= NR)
		return false;
	if (!m->supported[cur] || !m->supported[target])
		return false;
	/* Blocked by the kernel although the arc graph could reach them. */
	if (cur == VMIG_STATE_STOP_COPY &&
	    (target == VMIG_STATE_PRE_COPY ||
	     target == VMIG_STATE_PRE_COPY_P2P))
		return false;
	return m->dist[cur][target] >= 0;
}

FIXTURE(state_table) {
	struct model m;
};

FIXTURE_VARIANT(state_table) {
	uint32_t flags;
};

FIXTURE_VARIANT_ADD(state_table, stop_copy) {
	.flags = VMIG_MIG_STOP_COPY,
};

FIXTURE_VARIANT_ADD(state_table, p2p) {
	.flags = VMIG_MIG_STOP_COPY | VMIG_MIG_P2P,
};

FIXTURE_VARIANT_ADD(state_table, pre_copy) {
	.flags = VMIG_MIG_STOP_COPY | VMIG_MIG_PRE_COPY,
};

FIXTURE_VARIANT_ADD(state_table, p2p_pre_copy) {
	.flags = VMIG_MIG_STOP_COPY | VMIG_MIG_P2P | VMIG_MIG_PRE_COPY,
};

FIXTURE_SETUP(state_table)
{
	build_model(&self->m, variant->flags);
}

FIXTURE_TEARDOWN(state_table)
{
}

#define S(x) vmig_state_name(x)

TEST_F(state_table, every_step_is_a_required_arc)
{
	enum vmig_dev_state path[NR];
	unsigned int cur, target;
	int n, i;

	for (cur = 0; cur < NR; cur++) {
		for (target = 0; target < NR; target++) {
			if (!model_allows(&self->m, cur, target))
				continue;
			n = vmig_state_path(variant->flags, cur, target, path,
					    NR);
			ASSERT_LE(0, n) TH_LOG("%s -> %s", S(cur), S(target));
			for (i = 0; i < n; i++) {
				unsigned int from = i ? path[i - 1] : cur;

				EXPECT_TRUE(self->m.arc[from][path[i]])
					TH_LOG("%s -> %s uses arc %s -> %s",
					       S(cur), S(target), S(from),
					       S(path[i]));
			}
		}
	}
}

TEST_F(state_table, every_path_ends_at_target)
{
	enum vmig_dev_state path[NR];
	unsigned int cur, target;
	int n;

	for (cur = 0; cur < NR; cur++) {
		for (target = 0; target < NR; target++) {
			if (!model_allows(&self->m, cur, target))
				continue;
			n = vmig_state_path(variant->flags, cur, target, path,
					    NR);
			ASSERT_LE(0, n) TH_LOG("%s -> %s", S(cur), S(target));
			if (cur == target) {
				EXPECT_EQ(0, n);
				continue;
			}
			ASSERT_LT(0, n) TH_LOG("%s -> %s", S(cur), S(target));
			EXPECT_EQ(target, path[n - 1])
				TH_LOG("%s -> %s ends at %s", S(cur),
				       S(target), S(path[n - 1]));
		}
	}
}

TEST_F(state_table, every_path_is_shortest)
{
	enum vmig_dev_state path[NR];
	unsigned int cur, target;
	int n;

	for (cur = 0; cur < NR; cur++) {
		for (target = 0; target < NR; target++) {
			if (!model_allows(&self->m, cur, target))
				continue;
			n = vmig_state_path(variant->flags, cur, target, path,
					    NR);
			EXPECT_EQ(self->m.dist[cur][target], n)
				TH_LOG("%s -> %s", S(cur), S(target));
		}
	}
}

TEST_F(state_table, every_required_arc_is_used)
{
	bool used[NR][NR] = { { false } };
	enum vmig_dev_state path[NR];
	unsigned int cur, target, from;
	int n, i;

	for (cur = 0; cur < NR; cur++) {
		for (target = 0; target < NR; target++) {
			if (!model_allows(&self->m, cur, target))
				continue;
			n = vmig_state_path(variant->flags, cur, target, path,
					    NR);
			for (i = 0; i < n; i++)
				used[i ? path[i - 1] : cur][path[i]] = true;
		}
	}
	for (from = 0; from < NR; from++) {
		for (target = 0; target < NR; target++) {
			EXPECT_EQ(self->m.arc[from][target],
				  used[from][target])
				TH_LOG("arc %s -> %s", S(from), S(target));
		}
	}
}

TEST_F(state_table, refused_requests_are_einval)
{
	enum vmig_dev_state path[NR], next;
	unsigned int cur, target, i;

	for (cur = 0; cur < NR; cur++) {
		for (target = 0; target < NR; target++) {
			if (model_allows(&self->m, cur, target))
				continue;
			EXPECT_EQ(-EINVAL, vmig_state_next(variant->flags,
							   cur, target, &next))
				TH_LOG("%s -> %s", S(cur), S(target));
			EXPECT_EQ(-EINVAL, vmig_state_path(variant->flags,
							   cur, target, path,
							   NR))
				TH_LOG("%s -> %s", S(cur), S(target));
		}
		for (i = 0; i < sizeof(bad_states) / sizeof(bad_states[0]);
		     i++) {
			EXPECT_EQ(-EINVAL,
				  vmig_state_path(variant->flags, cur,
						  bad_states[i], path, NR));
			EXPECT_EQ(-EINVAL,
				  vmig_state_path(variant->flags,
						  bad_states[i], cur, path,
						  NR));
		}
	}
}

TEST_F(state_table, allowed_requests_succeed)
{
	enum vmig_dev_state path[NR];
	unsigned int cur, target;

	for (cur = 0; cur < NR; cur++) {
		for (target = 0; target < NR; target++) {
			if (!model_allows(&self->m, cur, target))
				continue;
			EXPECT_LE(0, vmig_state_path(variant->flags, cur,
						     target, path, NR))
				TH_LOG("%s -> %s", S(cur), S(target));
		}
	}
}

TEST_F(state_table, error_is_never_an_end)
{
	enum vmig_dev_state path[NR];
	unsigned int s;

	for (s = 0; s < NR; s++) {
		EXPECT_EQ(-EINVAL, vmig_state_path(variant->flags, s,
						   VMIG_STATE_ERROR, path,
						   NR));
		EXPECT_EQ(-EINVAL, vmig_state_path(variant->flags,
						   VMIG_STATE_ERROR, s, path,
						   NR));
	}
}

TEST_F(state_table, stop_copy_cannot_go_back_to_pre_copy)
{
	enum vmig_dev_state next;

	EXPECT_EQ(-EINVAL, vmig_state_next(variant->flags,
					   VMIG_STATE_STOP_COPY,
					   VMIG_STATE_PRE_COPY, &next));
	EXPECT_EQ(-EINVAL, vmig_state_next(variant->flags,
					   VMIG_STATE_STOP_COPY,
					   VMIG_STATE_PRE_COPY_P2P, &next));
}

TEST_F(state_table, next_is_first_step_of_path)
{
	enum vmig_dev_state path[NR], next;
	unsigned int cur, target;
	int n;

	for (cur = 0; cur < NR; cur++) {
		for (target = 0; target < NR; target++) {
			if (!model_allows(&self->m, cur, target))
				continue;
			n = vmig_state_path(variant->flags, cur, target, path,
					    NR);
			ASSERT_EQ(0, vmig_state_next(variant->flags, cur,
						     target, &next));
			EXPECT_EQ(n ? path[0] : cur, next)
				TH_LOG("%s -> %s", S(cur), S(target));
		}
	}
}

TEST_F(state_table, short_path_buffer_is_enospc)
{
	enum vmig_dev_state path[NR];
	unsigned int cur, target;
	int n;

	for (cur = 0; cur < NR; cur++) {
		for (target = 0; target < NR; target++) {
			if (!model_allows(&self->m, cur, target))
				continue;
			n = self->m.dist[cur][target];
			if (n == 0) {
				EXPECT_EQ(0, vmig_state_path(variant->flags,
							     cur, target,
							     NULL, 0));
				continue;
			}
			EXPECT_EQ(-ENOSPC,
				  vmig_state_path(variant->flags, cur, target,
						  path, n - 1))
				TH_LOG("%s -> %s", S(cur), S(target));
			EXPECT_EQ(n, vmig_state_path(variant->flags, cur,
						     target, path, n));
		}
	}
}

/* Unknown flag bits change nothing, as in the kernel. */
TEST_F(state_table, unknown_flag_bits_are_ignored)
{
	enum vmig_dev_state a[NR], b[NR];
	uint32_t more = variant->flags | (1U << 3) | (1U << 31);
	unsigned int cur, target;
	int na, nb;

	for (cur = 0; cur < NR; cur++) {
		for (target = 0; target < NR; target++) {
			na = vmig_state_path(variant->flags, cur, target, a,
					     NR);
			nb = vmig_state_path(more, cur, target, b, NR);
			ASSERT_EQ(na, nb);
			if (na > 0) {
				EXPECT_EQ(0, memcmp(a, b, na * sizeof(a[0])));
			}
		}
	}
}

/*
 * With every optional state supported, the kernel documents each request
 * that takes more than one arc, and the arcs it takes.
 */
static const char *const documented_paths[] = {
	"PRE_COPY -> PRE_COPY_P2P -> STOP_COPY",
	"PRE_COPY -> RUNNING -> RUNNING_P2P",
	"PRE_COPY -> RUNNING -> RUNNING_P2P -> STOP",
	"PRE_COPY -> RUNNING -> RUNNING_P2P -> STOP -> RESUMING",
	"PRE_COPY_P2P -> RUNNING_P2P -> RUNNING",
	"PRE_COPY_P2P -> RUNNING_P2P -> STOP",
	"PRE_COPY_P2P -> RUNNING_P2P -> STOP -> RESUMING",
	"RESUMING -> STOP -> RUNNING_P2P",
	"RESUMING -> STOP -> RUNNING_P2P -> PRE_COPY_P2P",
	"RESUMING -> STOP -> RUNNING_P2P -> RUNNING",
	"RESUMING -> STOP -> RUNNING_P2P -> RUNNING -> PRE_COPY",
	"RESUMING -> STOP -> STOP_COPY",
	"RUNNING -> RUNNING_P2P -> PRE_COPY_P2P",
	"RUNNING -> RUNNING_P2P -> STOP",
	"RUNNING -> RUNNING_P2P -> STOP -> RESUMING",
	"RUNNING -> RUNNING_P2P -> STOP -> STOP_COPY",
	"RUNNING_P2P -> RUNNING -> PRE_COPY",
	"RUNNING_P2P -> STOP -> RESUMING",
	"RUNNING_P2P -> STOP -> STOP_COPY",
	"STOP -> RUNNING_P2P -> PRE_COPY_P2P",
	"STOP -> RUNNING_P2P -> RUNNING",
	"STOP -> RUNNING_P2P -> RUNNING -> PRE_COPY",
	"STOP_COPY -> STOP -> RESUMING",
	"STOP_COPY -> STOP -> RUNNING_P2P",
	"STOP_COPY -> STOP -> RUNNING_P2P -> RUNNING",
};

/* Parse "A -> B -> C" into states; returns how many. */
static int parse_documented(const char *text, enum vmig_dev_state *out)
{
	char buf[128], *tok, *save = NULL;
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", text);
	for (tok = strtok_r(buf, " ->", &save); tok;
	     tok = strtok_r(NULL, " ->", &save)) {
		if (n >= NR + 1 || vmig_state_parse(tok, &out[n]))
			return -1;
		n++;
	}
	return n;
}

TEST(full_featured_paths_are_the_documented_ones)
{
	const uint32_t flags = VMIG_MIG_STOP_COPY | VMIG_MIG_P2P |
			       VMIG_MIG_PRE_COPY;
	const unsigned int nr_doc = sizeof(documented_paths) /
				    sizeof(documented_paths[0]);
	enum vmig_dev_state doc[NR + 1], path[NR];
	unsigned int cur, target, i, multi = 0;
	int n, d;

	for (i = 0; i < nr_doc; i++) {
		d = parse_documented(documented_paths[i], doc);
		ASSERT_LE(3, d) TH_LOG("%s", documented_paths[i]);
		n = vmig_state_path(flags, doc[0], doc[d - 1], path, NR);
		ASSERT_EQ(d - 1, n) TH_LOG("%s", documented_paths[i]);
		EXPECT_EQ(0, memcmp(path, doc + 1, n * sizeof(path[0])))
			TH_LOG("%s", documented_paths[i]);
	}

	/* ... and there are no other multi-arc paths. */
	for (cur = 0; cur < NR; cur++) {
		for (target = 0; target < NR; target++) {
			n = vmig_state_path(flags, cur, target, path, NR);
			if (n >= 2)
				multi++;
		}
	}
	EXPECT_EQ(nr_doc, multi);
}

/* Without STOP_COPY a device has no migration states at all. */
TEST(no_stop_copy_no_states)
{
	static const uint32_t flags[] = {
		0, VMIG_MIG_P2P, VMIG_MIG_PRE_COPY,
		VMIG_MIG_P2P | VMIG_MIG_PRE_COPY,
	};
	enum vmig_dev_state next;
	unsigned int f, cur, target;

	for (f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
		for (cur = 0; cur < NR; cur++) {
			for (target = 0; target < NR; target++) {
				EXPECT_EQ(-EINVAL,
					  vmig_state_next(flags[f], cur,
							  target, &next));
			}
		}
	}
}

TEST(next_needs_output)
{
	EXPECT_EQ(-EINVAL, vmig_state_next(VMIG_MIG_STOP_COPY,
					   VMIG_STATE_STOP,
					   VMIG_STATE_RUNNING, NULL));
}

/* ---------------------------------------------------------------- names */

TEST(name_parse_round_trip)
{
	enum vmig_dev_state s, parsed;

	for (s = 0; s < NR; s++) {
		ASSERT_EQ(0, vmig_state_parse(vmig_state_name(s), &parsed))
			TH_LOG("state %u", s);
		EXPECT_EQ(s, parsed);
	}
}

TEST(names_are_the_kernel_names)
{
	EXPECT_STREQ("ERROR", vmig_state_name(VMIG_STATE_ERROR));
	EXPECT_STREQ("STOP", vmig_state_name(VMIG_STATE_STOP));
	EXPECT_STREQ("RUNNING", vmig_state_name(VMIG_STATE_RUNNING));
	EXPECT_STREQ("STOP_COPY", vmig_state_name(VMIG_STATE_STOP_COPY));
	EXPECT_STREQ("RESUMING", vmig_state_name(VMIG_STATE_RESUMING));
	EXPECT_STREQ("RUNNING_P2P", vmig_state_name(VMIG_STATE_RUNNING_P2P));
	EXPECT_STREQ("PRE_COPY", vmig_state_name(VMIG_STATE_PRE_COPY));
	EXPECT_STREQ("PRE_COPY_P2P",
		     vmig_state_name(VMIG_STATE_PRE_COPY_P2P));
}

TEST(parse_is_case_insensitive)
{
	enum vmig_dev_state s;

	ASSERT_EQ(0, vmig_state_parse("running", &s));
	EXPECT_EQ(ST(VMIG_STATE_RUNNING), s);
	ASSERT_EQ(0, vmig_state_parse("Pre_Copy_P2P", &s));
	EXPECT_EQ(ST(VMIG_STATE_PRE_COPY_P2P), s);
}

TEST(parse_rejects_unknown_names)
{
	static const char *const bad[] = {
		"", "RUN", "RUNNING ", " STOP", "STOPCOPY", "INVALID", "3",
	};
	enum vmig_dev_state s = VMIG_STATE_STOP;
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-EINVAL, vmig_state_parse(bad[i], &s))
			TH_LOG("\"%s\"", bad[i]);
	}
	EXPECT_EQ(ST(VMIG_STATE_STOP), s);
	EXPECT_EQ(-EINVAL, vmig_state_parse(NULL, &s));
	EXPECT_EQ(-EINVAL, vmig_state_parse("STOP", NULL));
}

TEST(name_of_out_of_range_is_invalid)
{
	unsigned int i;

	for (i = 0; i < sizeof(bad_states) / sizeof(bad_states[0]); i++) {
		EXPECT_STREQ("INVALID", vmig_state_name(bad_states[i]));
	}
}

TEST_HARNESS_MAIN
