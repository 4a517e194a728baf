// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Guest RAM inside a device-state session (vmig_session_add_ram()): the
 * RAM half's thread and state; session.c opens the channels, carries the
 * RAM's size in CONFIG and decides the switchover with ram_sess_ready().
 *
 * Source: one thread runs the ring-first precopy (ram_send.c) over the
 * session's RAM channels (ram_net.c) with a convergence model whose device
 * sizes come from the session's devices.  After each verdict it records it
 * and wakes the session.  At the switchover (the VMM's vCPUs are stopped
 * by then) the session interrupts the precopy and the thread runs the last
 * pass, vmig_ram_precopy_complete(), whose finish waits for the
 * destination's acknowledgment.  On a failure the session stops it: the
 * send queue is aborted and the thread joined.
 *
 * Destination: one thread applies the packets of every RAM channel
 * (ram_serve_fds()) and records how that ended.
 *
 * r->lock guards the verdict and the status; it is taken alone.
 */
#include <errno.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "ram_xfer.h"
#include "transport.h"

#define DEFAULT_RAM_CHANNELS	2
#define DEFAULT_DOWNTIME_NS	(300ULL * 1000000)
/* A SWITCHOVER verdict older than this is no longer the model's word. */
#define VERDICT_FRESH_NS	(200ULL * 1000000)
/* After a verdict, ask the model again this often. */
#define VERDICT_PAUSE_NS	(20 * 1000000)

struct ram_sess {
	struct vmig_session_ram cfg;
	bool source;
	unsigned int nchan;
	uint64_t pages;

	pthread_t thread;
	bool started;
	void (*notify)(void *opaque);
	void *notify_opaque;

	/* source */
	struct vmig_ram_net *net;
	struct vmig_ram_precopy *pc;
	struct vmig_converge *conv;
	ram_sess_size_fn size;
	void *size_opaque;

	pthread_mutex_t lock;
	pthread_cond_t cond;		/* switchover or stop */
	int verdict;			/* the last; -1: none yet */
	uint64_t verdict_ns;
	bool switchover, stopping;
	int status;			/* 0 running, 1 done, < 0 failed */
	struct vmig_converge_info info;
};

static uint64_t pages_of(const struct vmig_session_ram *cfg, bool source)
{
	return source ? vmig_ram_nr_pages(cfg->ram) :
			ram_dest_pages(cfg->dest);
}

int ram_sess_new(const struct vmig_session_ram *cfg, bool source,
		 struct ram_sess **out)
{
	struct ram_sess *r;

	if (source ? !cfg->ram || cfg->dest : !cfg->dest || cfg->ram)
		return -EINVAL;
	if (cfg->channels > VMIG_MAX_CHANNELS)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	r->source = source;
	r->nchan = cfg->channels ? cfg->channels : DEFAULT_RAM_CHANNELS;
	r->pages = pages_of(cfg, source);
	r->verdict = -1;
	pthread_mutex_init(&r->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&r->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	*out = r;
	return 0;
}

unsigned int ram_sess_channels(const struct ram_sess *r)
{
	return r->nchan;
}

uint64_t ram_sess_pages(const struct ram_sess *r)
{
	return r->pages;
}

static void set_status(struct ram_sess *r, int status)
{
	pthread_mutex_lock(&r->lock);
	if (!r->status)
		r->status = status;
	pthread_mutex_unlock(&r->lock);
	r->notify(r->notify_opaque);
}

/* ---------------------------------------------------------------- source */

static int conv_size(void *opaque, unsigned int dev, uint64_t *bytes)
{
	struct ram_sess *r = opaque;

	return r->size(r->size_opaque, dev, bytes);
}

static void conv_stuck(void *opaque, const struct vmig_converge_info *info)
{
	struct ram_sess *r = opaque;

	if (r->cfg.not_converging)
		r->cfg.not_converging(r->cfg.opaque, info);
}

static void *src_thread(void *arg)
{
	struct ram_sess *r = arg;
	bool sw, changed;
	int v;

	vmig_name_thread("ramsrc", 0);
	for (;;) {
		v = vmig_ram_precopy_run(r->pc, r->conv);
		pthread_mutex_lock(&r->lock);
		changed = v >= 0 && v != r->verdict;
		if (v >= 0) {
			r->verdict = v;
			r->verdict_ns = ram_now_ns();
			/*
			 * For the stats: the last before the switchover is
			 * what it was decided on, the devices still in
			 * precopy.
			 */
			r->info = *ram_precopy_last_info(r->pc);
		}
		/*
		 * A verdict: the next one a check period later at the
		 * earliest.  It came because what is left fits (the session
		 * switches over when the devices are ready too) or will
		 * not fit; either way, sending on at once would spin.
		 */
		if (v >= 0 && !r->switchover && !r->stopping) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += VERDICT_PAUSE_NS;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		}
		sw = r->switchover || r->stopping;
		pthread_mutex_unlock(&r->lock);
		if (changed)
			r->notify(r->notify_opaque);
		if (v < 0 && v != -EINTR) {
			vmig_err("migration source: guest RAM precopy: %s",
				 strerror(-v));
			set_status(r, v);
			return NULL;
		}
		if (sw)
			break;
	}
	pthread_mutex_lock(&r->lock);
	sw = r->switchover && !r->stopping;
	pthread_mutex_unlock(&r->lock);
	if (!sw) {
		set_status(r, -ECANCELED);
		return NULL;
	}
	/* With postcopy to follow, only what precopy sent must be in. */
	v = r->cfg.postcopy ? vmig_ram_precopy_flush(r->pc) :
			      vmig_ram_precopy_complete(r->pc);
	if (v)
		vmig_err("migration source: guest RAM's last pass: %s",
			 strerror(-v));
	set_status(r, v ? v : 1);
	return NULL;
}

int ram_sess_src_start(struct ram_sess *r, const int *fds, unsigned int n,
		       unsigned int ndev, ram_sess_size_fn size,
		       void *size_opaque, void (*notify)(void *opaque),
		       void *notify_opaque)
{
	struct vmig_converge_config cc;
	struct vmig_ram_sink sink;
	int ret;

	r->size = size;
	r->size_opaque = size_opaque;
	r->notify = notify;
	r->notify_opaque = notify_opaque;
	vmig_converge_config_init(&cc);
	cc.downtime_ns = r->cfg.downtime_ns ? r->cfg.downtime_ns :
			 DEFAULT_DOWNTIME_NS;
	/*
	 * A limited precopy sends with pauses that would restart every
	 * measuring window: the limit is the bandwidth it can count on.
	 */
	cc.bandwidth = r->cfg.bandwidth ? r->cfg.bandwidth :
		       r->cfg.precopy.max_bandwidth;
	cc.nr_devices = ndev;
	cc.stop_copy_size = ndev ? conv_size : NULL;
	cc.not_converging = conv_stuck;
	cc.opaque = r;
	ret = vmig_converge_new(&cc, &r->conv);
	if (!ret)
		ret = ram_net_from_fds(fds, n, r->cfg.mem_limit, &r->net);
	if (ret)
		return ret;
	vmig_ram_net_sink(r->net, &sink);
	ret = vmig_ram_precopy_new(r->cfg.ram, &sink, &r->cfg.precopy, &r->pc);
	if (ret)
		return ret;
	ret = -pthread_create(&r->thread, NULL, src_thread, r);
	r->started = !ret;
	return ret;
}

bool ram_sess_postcopy(const struct ram_sess *r)
{
	return r->cfg.postcopy;
}

void ram_sess_set_postcopy(struct ram_sess *r, bool postcopy)
{
	r->cfg.postcopy = postcopy;
}

int ram_sess_ready(struct ram_sess *r)
{
	int ret;

	pthread_mutex_lock(&r->lock);
	if (r->status < 0)
		ret = r->status;
	else
		ret = (r->verdict == VMIG_CONVERGE_SWITCHOVER ||
		       (r->cfg.postcopy &&
			r->verdict == VMIG_CONVERGE_STUCK)) &&
		      ram_now_ns() - r->verdict_ns <= VERDICT_FRESH_NS;
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int ram_sess_set_downtime(struct ram_sess *r, uint64_t ns)
{
	if (!r->conv)
		return -ENOTCONN;
	vmig_converge_set_downtime(r->conv, ns);
	return 0;
}

void ram_sess_switchover(struct ram_sess *r)
{
	pthread_mutex_lock(&r->lock);
	r->switchover = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	ram_precopy_interrupt(r->pc);
}

/* ----------------------------------------------------------- destination */

struct dst_arg {
	struct ram_sess *r;
	int fds[VMIG_MAX_CHANNELS];
	unsigned int n;
};

static void *dst_thread(void *arg)
{
	struct dst_arg *a = arg;
	struct ram_sess *r = a->r;
	int ret;

	vmig_name_thread("ramdst", 0);
	ret = ram_serve_fds(r->cfg.dest, a->fds, a->n);
	if (ret)
		vmig_err("migration destination: guest RAM: %s",
			 strerror(-ret));
	free(a);
	set_status(r, ret ? ret : 1);
	return NULL;
}

int ram_sess_dst_start(struct ram_sess *r, const int *fds, unsigned int n,
		       void (*notify)(void *opaque), void *notify_opaque)
{
	struct dst_arg *a;
	int ret;

	if (!n || n > VMIG_MAX_CHANNELS)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->r = r;
	a->n = n;
	memcpy(a->fds, fds, n * sizeof(*fds));
	r->notify = notify;
	r->notify_opaque = notify_opaque;
	ret = -pthread_create(&r->thread, NULL, dst_thread, a);
	if (ret)
		free(a);
	r->started = !ret;
	return ret;
}

/* ------------------------------------------------------------------ both */

int ram_sess_status(struct ram_sess *r)
{
	int st;

	pthread_mutex_lock(&r->lock);
	st = r->status;
	pthread_mutex_unlock(&r->lock);
	return st;
}

void ram_sess_stop(struct ram_sess *r)
{
	if (!r->started)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	if (r->pc)
		ram_precopy_interrupt(r->pc);
	if (r->net)
		ram_net_abort(r->net);
	/* The destination's receivers end when session.c shuts the fds. */
	pthread_join(r->thread, NULL);
	r->started = false;
}

void ram_sess_get_stats(struct ram_sess *r, struct vmig_session_ram_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (r->source && r->pc) {
		struct vmig_ram_precopy_stats ps;

		vmig_ram_precopy_get_stats(r->pc, &ps);
		st->pages = ps.pages;
		st->zero_pages = ps.zero_pages;
		st->bytes = ps.bytes;
		st->final_pages = ps.final_pages;
		st->final_ns = ps.complete_ns;
	} else if (!r->source) {
		struct vmig_ram_dest_stats ds;

		vmig_ram_dest_get_stats(r->cfg.dest, &ds);
		st->pages = ds.pages;
		st->zero_pages = ds.zero_pages;
		st->bytes = ds.bytes;
	}
	pthread_mutex_lock(&r->lock);
	st->verdict = r->verdict;
	st->info = r->info;
	pthread_mutex_unlock(&r->lock);
	st->postcopy = r->cfg.postcopy;
}

void ram_sess_free(struct ram_sess *r)
{
	if (!r)
		return;
	ram_sess_stop(r);
	vmig_ram_precopy_free(r->pc);
	vmig_ram_net_close(r->net);
	vmig_converge_free(r->conv);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
