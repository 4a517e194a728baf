// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-migsim: the migration state machine and its data fds.
 *
 * Saving: entering PRE_COPY(_P2P) or STOP_COPY opens a read-only data fd
 * whose read() emits the stream: header, CHUNK records for every chunk,
 * then, once the device is in STOP_COPY, the CONFIG record and the END
 * record.  In PRE_COPY the stream pauses (read() fails with ENOMSG) after
 * the chunks; PRE_COPY_P2P -> STOP_COPY continues the same fd.
 *
 * Resuming: STOP -> RESUMING opens a write-only data fd that parses the
 * stream into a staging store (stream.c).  RESUMING -> STOP checks it and
 * only then replaces the device's state; a failed load leaves the device in
 * ERROR with its own state untouched, until VFIO_DEVICE_RESET.
 *
 * Locking: see migsim.h.  state_mutex is taken before migf->lock.
 */
#include <linux/anon_inodes.h>
#include <linux/delay.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "migsim.h"
#include <uapi/linux/vfio_compat.h>

#define MIGSIM_REC_LEN sizeof(struct migsim_record)
#define MIGSIM_HDR_LEN sizeof(struct migsim_stream_header)
#define MIGSIM_END_REC_LEN (MIGSIM_REC_LEN + sizeof(struct migsim_end))
/* a read() lets go of the data fd's lock after this many bytes */
#define MIGSIM_READ_SLICE SZ_256K

/* Bytes of CHUNK records for chunks [first, end) of a state. */
static u64 migsim_chunk_bytes(struct migsim_store *st, unsigned long first,
			      unsigned long end)
{
	u64 stop;

	if (first >= end)
		return 0;
	stop = min_t(u64, (u64)end * st->chunk_size, st->size);
	return (end - first) * MIGSIM_REC_LEN + stop -
	       (u64)first * st->chunk_size;
}

u64 migsim_full_stream_size(struct migsim_dev *mdev)
{
	struct migsim_store *st = mdev->store;

	unsigned long n = migsim_nr_chunks(st->size, st->chunk_size);

	return MIGSIM_HDR_LEN + migsim_chunk_bytes(st, 0, n) +
	       MIGSIM_REC_LEN + migsim_config_len(mdev) + MIGSIM_END_REC_LEN;
}

/* The chunks a precopy pass covers: all but the non-precopyable tail. */
static unsigned long migsim_precopy_limit(struct migsim_dev *mdev)
{
	struct migsim_store *st = mdev->store;
	unsigned long n = migsim_nr_chunks(st->size, st->chunk_size);
	unsigned long np = migsim_nr_chunks(mdev->nonprecopy_size,
					    st->chunk_size);

	return np >= n ? 0 : n - np;
}

/* ------------------------------------------------------------ data fds */

static void migsim_disable_migf(struct migsim_migf *migf)
{
	mutex_lock(&migf->lock);
	migf->disabled = true;
	migf->mdev = NULL;
	migf->payload = NULL;
	migf->inflight = -1;
	kvfree(migf->bounce);
	migf->bounce = NULL;
	migsim_parser_destroy(&migf->parser);
	mutex_unlock(&migf->lock);
	wake_up_interruptible(&migf->poll_wait);
}

/* Called with state_mutex held. */
void migsim_disable_fds(struct migsim_dev *mdev)
{
	struct migsim_chunk *c;
	unsigned long i;

	if (mdev->saving) {
		migsim_disable_migf(mdev->saving);
		fput(mdev->saving->filp);
		mdev->saving = NULL;
		xa_for_each_marked(&mdev->store->chunks, i, c,
				   MIGSIM_MARK_DIRTY)
			xa_clear_mark(&mdev->store->chunks, i,
				      MIGSIM_MARK_DIRTY);
	}
	if (mdev->resuming) {
		migsim_disable_migf(mdev->resuming);
		fput(mdev->resuming->filp);
		mdev->resuming = NULL;
	}
}

static int migsim_release_migf(struct inode *inode, struct file *filp)
{
	struct migsim_migf *migf = filp->private_data;

	migsim_disable_migf(migf);
	mutex_destroy(&migf->lock);
	kfree(migf);
	return 0;
}

static u64 migsim_item_left(struct migsim_migf *migf)
{
	return (migf->frame_len - migf->frame_pos) +
	       (migf->payload_len - migf->payload_pos);
}

/* Precopy: bytes of the first pass (header and chunks) not yet read. */
static u64 migsim_initial_left(struct migsim_migf *migf)
{
	struct migsim_dev *mdev = migf->mdev;
	u64 n = migf->item_dirty ? 0 : migsim_item_left(migf);

	if (migf->phase == MIGSIM_SAVE_HEADER)
		n += MIGSIM_HDR_LEN;
	return n + migsim_chunk_bytes(mdev->store, migf->next_chunk,
				      migsim_precopy_limit(mdev));
}

/* Bytes owed for changes: dirty chunks and RESIZE records. */
static u64 migsim_dirty_left(struct migsim_migf *migf)
{
	u64 n = migf->item_dirty ? migsim_item_left(migf) : 0;

	n += migf->dirty_count * MIGSIM_REC_LEN + migf->dirty_payload;
	return n + (migf->resize_pending ? MIGSIM_REC_LEN : 0);
}

/* Bytes from here to the end of the stream, were the device stopped now. */
static u64 migsim_stop_copy_left(struct migsim_migf *migf)
{
	struct migsim_dev *mdev = migf->mdev;
	struct migsim_store *st = mdev->store;
	u64 n = migsim_item_left(migf);

	switch (migf->phase) {
	case MIGSIM_SAVE_HEADER:
		n += MIGSIM_HDR_LEN;
		fallthrough;
	case MIGSIM_SAVE_CHUNKS:
		n += migsim_chunk_bytes(st, migf->next_chunk,
					migsim_nr_chunks(st->size,
							 st->chunk_size));
		n += migf->dirty_count * MIGSIM_REC_LEN + migf->dirty_payload;
		n += migf->resize_pending ? MIGSIM_REC_LEN : 0;
		fallthrough;
	case MIGSIM_SAVE_CONFIG:
		n += MIGSIM_REC_LEN + migsim_config_len(mdev);
		fallthrough;
	case MIGSIM_SAVE_END:
		n += MIGSIM_END_REC_LEN;
		break;
	case MIGSIM_SAVE_DONE:
		break;
	}
	return n;
}

/*
 * The queued payload is about to change or go away: give the rest of it a
 * private copy, so the record still matches the CRC already sent.
 */
static int migsim_save_pin(struct migsim_migf *migf)
{
	u32 left = migf->payload_len - migf->payload_pos;

	if (migf->inflight < 0 || !left)
		return 0;
	if (!migf->bounce) {
		migf->bounce = kvmalloc(migf->mdev->store->chunk_size,
					GFP_KERNEL_ACCOUNT);
		if (!migf->bounce)
			return -ENOMEM;
	}
	memcpy(migf->bounce, migf->payload + migf->payload_pos, left);
	migf->payload = migf->bounce;
	migf->payload_len = left;
	migf->payload_pos = 0;
	migf->inflight = -1;
	return 0;
}

/*
 * Chunk idx of the device is about to change.  Called with state_mutex and
 * migf->lock held.  A chunk already sent in this stream is marked so that it
 * is sent again.
 */
void migsim_save_dirty(struct migsim_migf *migf, unsigned long idx,
		       struct migsim_chunk *c)
{
	struct xarray *xa = &migf->mdev->store->chunks;

	if (migf->inflight == idx && migsim_save_pin(migf)) {
		/* no memory for a private copy: send the chunk again whole */
		migf->inflight = -1;
	}
	if (idx < migf->next_chunk &&
	    !xa_get_mark(xa, idx, MIGSIM_MARK_DIRTY)) {
		xa_set_mark(xa, idx, MIGSIM_MARK_DIRTY);
		migf->dirty_count++;
		migf->dirty_payload += c->len;
		wake_up_interruptible(&migf->poll_wait);
	}
}

static void migsim_queue_chunk(struct migsim_migf *migf, unsigned long idx,
			       bool dirty)
{
	struct migsim_store *st = migf->mdev->store;
	struct migsim_chunk *c = migsim_store_chunk(st, idx);
	struct migsim_record *rec = (struct migsim_record *)migf->frame;
	u64 off = (u64)idx * st->chunk_size;

	migsim_stream_record(rec, MIGSIM_REC_CHUNK, off, c->len,
			     migsim_crc_format(migf->mdev->format, off, c->len,
					       migsim_chunk_crc(c)),
			     migf->seq++);
	migf->frame_len = MIGSIM_REC_LEN;
	migf->payload = c->data;
	migf->payload_len = c->len;
	migf->payload_bytes += c->len;
	migf->inflight = idx;
	migf->item_dirty = dirty;
}

/*
 * Queue the next item of the stream into the frame/payload buffers.
 * Returns 0, or -ENOMSG when a precopy stream has nothing more for now.
 */
static int migsim_save_next(struct migsim_migf *migf)
{
	struct migsim_dev *mdev = migf->mdev;
	struct migsim_store *st = mdev->store;
	struct migsim_record *rec = (struct migsim_record *)migf->frame;
	unsigned long idx, limit;
	struct migsim_chunk *c;

	migf->frame_len = 0;
	migf->frame_pos = 0;
	migf->payload_pos = 0;
	migf->payload_len = 0;
	migf->payload = NULL;
	migf->inflight = -1;
	migf->item_dirty = false;

	switch (migf->phase) {
	case MIGSIM_SAVE_HEADER:
		migsim_stream_header(mdev,
				     (struct migsim_stream_header *)migf->frame,
				     migf->stop_copy ? 0 :
				     MIGSIM_STREAM_F_PRECOPY);
		migf->frame_len = MIGSIM_HDR_LEN;
		migf->phase = MIGSIM_SAVE_CHUNKS;
		migf->resize_pending = false;
		return 0;
	case MIGSIM_SAVE_CHUNKS:
		if (migf->resize_pending) {
			migsim_stream_record(rec, MIGSIM_REC_RESIZE, st->size,
					     0, 0, migf->seq++);
			migf->frame_len = MIGSIM_REC_LEN;
			migf->resize_pending = false;
			migf->item_dirty = true;
			return 0;
		}
		limit = migf->stop_copy ?
			migsim_nr_chunks(st->size, st->chunk_size) :
			migsim_precopy_limit(mdev);
		if (migf->next_chunk < limit) {
			migsim_queue_chunk(migf, migf->next_chunk++, false);
			return 0;
		}
		if (migf->dirty_count) {
			idx = 0;
			c = xa_find(&st->chunks, &idx, ULONG_MAX,
				    MIGSIM_MARK_DIRTY);
			if (!WARN_ON_ONCE(!c)) {
				xa_clear_mark(&st->chunks, idx,
					      MIGSIM_MARK_DIRTY);
				migf->dirty_count--;
				migf->dirty_payload -= c->len;
				migsim_queue_chunk(migf, idx, true);
				return 0;
			}
		}
		if (!migf->stop_copy)
			return -ENOMSG;
		migf->phase = MIGSIM_SAVE_CONFIG;
		fallthrough;
	case MIGSIM_SAVE_CONFIG:
		memcpy(rec + 1, migf->config, migf->config_len);
		migsim_stream_record(rec, MIGSIM_REC_CONFIG, 0,
				     migf->config_len,
				     migsim_crc(~0U, rec + 1,
						migf->config_len) ^ ~0U,
				     migf->seq++);
		migf->frame_len = MIGSIM_REC_LEN + migf->config_len;
		migf->phase = MIGSIM_SAVE_END;
		return 0;
	case MIGSIM_SAVE_END: {
		struct migsim_end *end = (void *)(rec + 1);

		memset(end, 0, sizeof(*end));
		end->state_size = cpu_to_le64(st->size);
		end->records = cpu_to_le64(migf->seq);
		end->payload_bytes = cpu_to_le64(migf->payload_bytes);
		end->state_checksum = cpu_to_le32(migsim_store_checksum(st));
		migsim_stream_record(rec, MIGSIM_REC_END, 0, sizeof(*end),
				     migsim_crc(~0U, end, sizeof(*end)) ^ ~0U,
				     migf->seq++);
		migf->frame_len = MIGSIM_END_REC_LEN;
		migf->phase = MIGSIM_SAVE_DONE;
		return 0;
	}
	case MIGSIM_SAVE_DONE:
		break;
	}
	return 0;
}

/*
 * Injected faults of a save read: sleep for a slow device; fail at the
 * armed offset, once.  *fault_at gets the offset a read must stop at, or
 * U64_MAX.  Called with migf->lock held.
 */
static int migsim_save_faults(struct migsim_migf *migf, u64 *fault_at)
{
	struct migsim_dev *mdev = migf->mdev;
	u32 delay;
	int ret = 0;

	spin_lock(&mdev->error_lock);
	delay = mdev->faults.read_delay_us;
	*fault_at = mdev->faults.save_offset;
	if (*fault_at != U64_MAX && *fault_at <= migf->pos) {
		ret = -mdev->faults.save_errno;
		mdev->faults.save_offset = U64_MAX;
		*fault_at = U64_MAX;
	}
	spin_unlock(&mdev->error_lock);
	if (ret)
		migsim_set_error(mdev, "injected save fault at stream byte %llu: %d",
				 migf->pos, ret);
	if (delay)
		fsleep(delay);
	return ret;
}

static ssize_t migsim_save_read(struct file *filp, char __user *buf,
				size_t len, loff_t *pos)
{
	struct migsim_migf *migf = filp->private_data;
	size_t done = 0, yielded = 0;
	u64 fault_at;
	int ret = 0;

	if (pos)
		return -ESPIPE;

	mutex_lock(&migf->lock);
	if (migf->disabled) {
		ret = -ENODEV;
		goto out;
	}
	ret = migsim_save_faults(migf, &fault_at);
	if (ret)
		goto out;
	if (fault_at != U64_MAX)
		len = min_t(u64, len, fault_at - migf->pos);

	while (done < len) {
		size_t n;

		if (migf->frame_pos < migf->frame_len) {
			n = min_t(size_t, migf->frame_len - migf->frame_pos,
				  len - done);
			if (copy_to_user(buf + done,
					 migf->frame + migf->frame_pos, n)) {
				ret = -EFAULT;
				break;
			}
			migf->frame_pos += n;
		} else if (migf->payload_pos < migf->payload_len) {
			n = min_t(size_t, migf->payload_len -
				  migf->payload_pos, len - done);
			if (copy_to_user(buf + done,
					 migf->payload + migf->payload_pos,
					 n)) {
				ret = -EFAULT;
				break;
			}
			migf->payload_pos += n;
		} else {
			if (migf->phase == MIGSIM_SAVE_DONE)
				break;
			ret = migsim_save_next(migf);
			if (ret)
				break;
			continue;
		}
		done += n;
		migf->pos += n;
		/*
		 * Let the device work between pieces of a long read: the
		 * engine dirties chunks under this lock.  The cursor lives in
		 * migf, so the read goes on where it stopped.
		 */
		if (done - yielded >= MIGSIM_READ_SLICE) {
			yielded = done;
			mutex_unlock(&migf->lock);
			cond_resched();
			mutex_lock(&migf->lock);
			if (migf->disabled) {
				ret = -ENODEV;
				break;
			}
		}
	}
out:
	if (migf->mdev) {
		atomic64_add(done, &migf->mdev->stats.bytes_saved);
		if (!migf->stop_copy)
			atomic64_inc(&migf->mdev->stats.precopy_reads);
	}
	mutex_unlock(&migf->lock);
	return done ? done : ret;
}

static __poll_t migsim_save_poll(struct file *filp,
				 struct poll_table_struct *wait)
{
	struct migsim_migf *migf = filp->private_data;
	__poll_t mask = 0;

	poll_wait(filp, &migf->poll_wait, wait);
	mutex_lock(&migf->lock);
	if (migf->disabled)
		mask = EPOLLERR;
	else if (migf->stop_copy || migsim_initial_left(migf) ||
		 migsim_dirty_left(migf))
		mask = EPOLLIN | EPOLLRDNORM;
	mutex_unlock(&migf->lock);
	return mask;
}

static long migsim_precopy_ioctl(struct file *filp, unsigned int cmd,
				 unsigned long arg)
{
	struct migsim_migf *migf = filp->private_data;
	struct vfio_precopy_info info = {};
	unsigned long minsz = offsetofend(struct vfio_precopy_info,
					  dirty_bytes);
	long ret = 0;

	if (cmd != VFIO_MIG_GET_PRECOPY_INFO)
		return -ENOTTY;
	if (copy_from_user(&info, (void __user *)arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;

	mutex_lock(&migf->lock);
	if (migf->disabled) {
		ret = -ENODEV;
		goto out;
	}
	/* valid only in the PRE_COPY states, per the uAPI */
	if (migf->stop_copy) {
		ret = -EINVAL;
		goto out;
	}
	info.flags = 0;
	if (migf->reinit && READ_ONCE(migf->mdev->precopy_info_v2))
		info.flags |= VFIO_PRECOPY_INFO_REINIT;
	migf->reinit = false;
	info.initial_bytes = migsim_initial_left(migf);
	info.dirty_bytes = migsim_dirty_left(migf);
out:
	mutex_unlock(&migf->lock);
	if (ret)
		return ret;
	return copy_to_user((void __user *)arg, &info, minsz) ? -EFAULT : 0;
}

static const struct file_operations migsim_save_fops = {
	.owner = THIS_MODULE,
	.read = migsim_save_read,
	.poll = migsim_save_poll,
	.unlocked_ioctl = migsim_precopy_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.release = migsim_release_migf,
};

static ssize_t migsim_resume_write(struct file *filp, const char __user *buf,
				   size_t len, loff_t *pos)
{
	struct migsim_migf *migf = filp->private_data;
	ssize_t ret;

	if (pos)
		return -ESPIPE;

	mutex_lock(&migf->lock);
	if (migf->disabled) {
		ret = -ENODEV;
	} else {
		bool had_error = migf->parser.error;
		struct migsim_dev *mdev = migf->mdev;
		u64 at = U64_MAX;

		spin_lock(&mdev->error_lock);
		if (mdev->faults.load_offset != U64_MAX &&
		    mdev->faults.load_offset < migf->parser.pos + len &&
		    !migf->parser.error) {
			at = max(mdev->faults.load_offset, migf->parser.pos);
			mdev->faults.load_offset = U64_MAX;
		}
		spin_unlock(&mdev->error_lock);
		if (at != U64_MAX) {
			/* take the bytes before the fault, then fail */
			ret = at > migf->parser.pos ?
			      migsim_parse(&migf->parser, mdev, buf,
					   at - migf->parser.pos) : 0;
			if (ret >= 0 && !migf->parser.error) {
				scnprintf(migf->parser.why,
					  sizeof(migf->parser.why),
					  "injected load fault at stream byte %llu",
					  at);
				migf->parser.error = -EIO;
			}
			ret = migf->parser.error;
		} else {
			ret = migsim_parse(&migf->parser, mdev, buf, len);
		}
		if (ret > 0)
			atomic64_add(ret, &mdev->stats.bytes_loaded);
		if (!had_error && migf->parser.error)
			migsim_set_error(migf->mdev,
					 "refusing migration stream: %s",
					 migf->parser.why);
	}
	mutex_unlock(&migf->lock);
	return ret;
}

/* PRECOPY_INFO is for the PRE_COPY states only: EINVAL, per the uAPI. */
static long migsim_resume_ioctl(struct file *filp, unsigned int cmd,
				unsigned long arg)
{
	return cmd == VFIO_MIG_GET_PRECOPY_INFO ? -EINVAL : -ENOTTY;
}

static const struct file_operations migsim_resume_fops = {
	.owner = THIS_MODULE,
	.write = migsim_resume_write,
	.unlocked_ioctl = migsim_resume_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.release = migsim_release_migf,
};

static struct migsim_migf *migsim_migf_create(struct migsim_dev *mdev,
					      bool resuming)
{
	struct migsim_migf *migf;
	int ret;

	migf = kzalloc(sizeof(*migf), GFP_KERNEL_ACCOUNT);
	if (!migf)
		return ERR_PTR(-ENOMEM);
	mutex_init(&migf->lock);
	init_waitqueue_head(&migf->poll_wait);
	migf->mdev = mdev;
	migf->resuming = resuming;
	migf->inflight = -1;
	if (resuming) {
		ret = migsim_parser_init(&migf->parser,
					 mdev->store->chunk_size);
		if (ret)
			goto err;
	}
	migf->filp = anon_inode_getfile("vfio-migsim-data",
					resuming ? &migsim_resume_fops :
					&migsim_save_fops, migf,
					resuming ? O_WRONLY : O_RDONLY);
	if (IS_ERR(migf->filp)) {
		ret = PTR_ERR(migf->filp);
		goto err;
	}
	stream_open(migf->filp->f_inode, migf->filp);
	return migf;
err:
	migsim_parser_destroy(&migf->parser);
	mutex_destroy(&migf->lock);
	kfree(migf);
	return ERR_PTR(ret);
}

/* ------------------------------------------------------------ the arcs */

/* RESUMING -> STOP: check the staged state and make it the device's. */
static int migsim_load(struct migsim_dev *mdev)
{
	struct migsim_migf *migf = mdev->resuming;
	struct migsim_parser *p = &migf->parser;
	struct migsim_store *old;
	int ret;

	mutex_lock(&migf->lock);
	ret = migsim_parse_finish(p);
	if (ret) {
		migsim_set_error(mdev, "load failed: %s", p->why);
		mutex_unlock(&migf->lock);
		return ret;
	}
	old = mdev->store;
	p->staged->seed = old->seed;
	mdev->store = p->staged;
	p->staged = NULL;
	migsim_config_load(mdev, p->config);
	mdev->generation++;
	mutex_unlock(&migf->lock);
	migsim_store_free(old);
	dev_dbg(mdev->vdev.dev, "loaded %llu bytes of state\n",
		mdev->store->size);
	return 0;
}

static struct file *migsim_open_save(struct migsim_dev *mdev, bool stop_copy)
{
	struct migsim_migf *migf = migsim_migf_create(mdev, false);

	if (IS_ERR(migf))
		return ERR_CAST(migf);
	migf->stop_copy = stop_copy;
	if (stop_copy) {
		migsim_config_save(mdev, migf->config);
		migf->config_len = migsim_config_len(mdev);
	}
	mdev->saving = migf;
	get_file(migf->filp);
	return migf->filp;
}

static struct file *migsim_step(struct migsim_dev *mdev,
				enum vfio_device_mig_state new)
{
	enum vfio_device_mig_state cur = mdev->mig_state;
	struct migsim_migf *migf;
	int ret;

	/* P2P quiescing arcs: no device activity to stop or start yet. */
	if ((cur == VFIO_DEVICE_STATE_RUNNING &&
	     new == VFIO_DEVICE_STATE_RUNNING_P2P) ||
	    (cur == VFIO_DEVICE_STATE_RUNNING_P2P &&
	     (new == VFIO_DEVICE_STATE_RUNNING ||
	      new == VFIO_DEVICE_STATE_STOP)) ||
	    (cur == VFIO_DEVICE_STATE_STOP &&
	     new == VFIO_DEVICE_STATE_RUNNING_P2P) ||
	    (cur == VFIO_DEVICE_STATE_PRE_COPY &&
	     new == VFIO_DEVICE_STATE_PRE_COPY_P2P) ||
	    (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P &&
	     new == VFIO_DEVICE_STATE_PRE_COPY))
		return NULL;

	/* Arcs that end a saving session. */
	if ((cur == VFIO_DEVICE_STATE_PRE_COPY &&
	     new == VFIO_DEVICE_STATE_RUNNING) ||
	    (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P &&
	     new == VFIO_DEVICE_STATE_RUNNING_P2P) ||
	    (cur == VFIO_DEVICE_STATE_STOP_COPY &&
	     new == VFIO_DEVICE_STATE_STOP)) {
		migsim_disable_fds(mdev);
		return NULL;
	}

	if (cur == VFIO_DEVICE_STATE_RESUMING &&
	    new == VFIO_DEVICE_STATE_STOP) {
		ret = migsim_load(mdev);
		if (ret)
			return ERR_PTR(ret);
		migsim_disable_fds(mdev);
		return NULL;
	}

	if ((cur == VFIO_DEVICE_STATE_RUNNING &&
	     new == VFIO_DEVICE_STATE_PRE_COPY) ||
	    (cur == VFIO_DEVICE_STATE_RUNNING_P2P &&
	     new == VFIO_DEVICE_STATE_PRE_COPY_P2P))
		return migsim_open_save(mdev, false);

	if (cur == VFIO_DEVICE_STATE_STOP &&
	    new == VFIO_DEVICE_STATE_STOP_COPY)
		return migsim_open_save(mdev, true);

	if (cur == VFIO_DEVICE_STATE_PRE_COPY_P2P &&
	    new == VFIO_DEVICE_STATE_STOP_COPY) {
		/* the precopy fd goes on to the end of the stream */
		migf = mdev->saving;
		mutex_lock(&migf->lock);
		migf->stop_copy = true;
		migsim_config_save(mdev, migf->config);
		migf->config_len = migsim_config_len(mdev);
		mutex_unlock(&migf->lock);
		wake_up_interruptible(&migf->poll_wait);
		return NULL;
	}

	if (cur == VFIO_DEVICE_STATE_STOP &&
	    new == VFIO_DEVICE_STATE_RESUMING) {
		migf = migsim_migf_create(mdev, true);
		if (IS_ERR(migf))
			return ERR_CAST(migf);
		mdev->resuming = migf;
		get_file(migf->filp);
		return migf->filp;
	}

	/* vfio_mig_get_next_state() gives no other arc for our flags */
	WARN_ON_ONCE(1);
	return ERR_PTR(-EINVAL);
}

/* An injected "fail the next transition", once.  state_mutex held. */
static int migsim_transition_fault(struct migsim_dev *mdev)
{
	int err;

	spin_lock(&mdev->error_lock);
	err = mdev->faults.fail_transition;
	mdev->faults.fail_transition = 0;
	spin_unlock(&mdev->error_lock);
	if (err)
		migsim_set_error(mdev, "injected fault: arc from %s fails with %d",
				 migsim_state_name(mdev->mig_state), -err);
	return -err;
}

static struct file *migsim_set_state(struct vfio_device *vdev,
				     enum vfio_device_mig_state target)
{
	struct migsim_dev *mdev = to_migsim(vdev);
	enum vfio_device_mig_state next;
	struct file *res = NULL;
	int ret;

	mutex_lock(&mdev->state_mutex);
	while (mdev->mig_state != target) {
		ret = vfio_mig_get_next_state(vdev, mdev->mig_state, target,
					      &next);
		if (ret) {
			res = ERR_PTR(ret);
			break;
		}
		ret = migsim_transition_fault(mdev);
		res = ret ? ERR_PTR(ret) : migsim_step(mdev, next);
		if (IS_ERR(res)) {
			/*
			 * A failed arc leaves the device in ERROR: its data
			 * fds are closed and only a reset brings it back.
			 */
			if (!ret && mdev->mig_state != VFIO_DEVICE_STATE_RESUMING)
				migsim_set_error(mdev, "arc %s -> %s failed: %ld",
						 migsim_state_name(mdev->mig_state),
						 migsim_state_name(next),
						 PTR_ERR(res));
			migsim_disable_fds(mdev);
			migsim_nl_state_event(mdev, mdev->mig_state,
					      VFIO_DEVICE_STATE_ERROR);
			mdev->mig_state = VFIO_DEVICE_STATE_ERROR;
			break;
		}
		migsim_nl_state_event(mdev, mdev->mig_state, next);
		mdev->mig_state = next;
		if (WARN_ON(res && next != target)) {
			fput(res);
			res = ERR_PTR(-EINVAL);
			break;
		}
	}
	mutex_unlock(&mdev->state_mutex);
	return res;
}

static int migsim_get_state(struct vfio_device *vdev,
			    enum vfio_device_mig_state *state)
{
	struct migsim_dev *mdev = to_migsim(vdev);

	mutex_lock(&mdev->state_mutex);
	*state = mdev->mig_state;
	mutex_unlock(&mdev->state_mutex);
	return 0;
}

/*
 * The exact number of bytes a STOP_COPY read would return from now: the
 * rest of an open save stream, or a whole stream.
 */
static int migsim_get_data_size(struct vfio_device *vdev,
				unsigned long *len)
{
	struct migsim_dev *mdev = to_migsim(vdev);
	struct migsim_migf *migf;

	mutex_lock(&mdev->state_mutex);
	migf = mdev->saving;
	if (migf) {
		mutex_lock(&migf->lock);
		*len = migsim_stop_copy_left(migf);
		mutex_unlock(&migf->lock);
	} else {
		*len = migsim_full_stream_size(mdev);
	}
	mutex_unlock(&mdev->state_mutex);
	return 0;
}

const struct vfio_migration_ops migsim_migration_ops = {
	.migration_set_state = migsim_set_state,
	.migration_get_state = migsim_get_state,
	.migration_get_data_size = migsim_get_data_size,
};

/*
 * Resize the state (sysfs now; netlink later).  Allowed while the device
 * runs (RUNNING or PRE_COPY), also with a precopy stream open: the stream
 * then owes a RESIZE record, chunks it already sent that changed are sent
 * again, and new chunks join its first pass (reported as REINIT after the
 * PRECOPY_INFOv2 opt-in).  Called with state_mutex held.
 */
int migsim_resize(struct migsim_dev *mdev, u64 size)
{
	struct migsim_migf *migf = mdev->saving;
	struct migsim_store *st = mdev->store;
	unsigned long old_n = migsim_nr_chunks(st->size, st->chunk_size);
	unsigned long new_n = migsim_nr_chunks(size, st->chunk_size);
	/* the last chunk both sizes share: the one that may change length */
	unsigned long edge = min(old_n, new_n) - 1;
	struct migsim_chunk *c;
	u64 old_size = st->size;
	unsigned long i;
	int ret;

	lockdep_assert_held(&mdev->state_mutex);
	if (size < PAGE_SIZE || size % PAGE_SIZE ||
	    size > migsim_max_state_size)
		return -EINVAL;
	if (mdev->mig_state != VFIO_DEVICE_STATE_RUNNING &&
	    mdev->mig_state != VFIO_DEVICE_STATE_PRE_COPY)
		return -EBUSY;
	if (mdev->resuming || size == old_size)
		return mdev->resuming ? -EBUSY : 0;
	if (!migf)
		goto resize;
	/* already-sent chunks must not slide into the STOP_COPY-only tail */
	if (size < old_size && mdev->nonprecopy_size &&
	    new_n - min(new_n, migsim_nr_chunks(mdev->nonprecopy_size,
						st->chunk_size)) <
	    migf->next_chunk)
		return -EBUSY;

	mutex_lock(&migf->lock);
	/* the chunk at the edge changes length, those past it go away */
	if (migf->inflight >= (long)edge) {
		ret = migsim_save_pin(migf);
		if (ret)
			goto out_unlock;
	}
	ret = migsim_store_resize(st, size);
	if (ret)
		goto out_unlock;
	migf->next_chunk = min(migf->next_chunk, new_n);
	/* a partial last chunk that grew, or a chunk cut short, changed */
	if ((size > old_size && old_size % st->chunk_size) ||
	    (size < old_size && size % st->chunk_size))
		migsim_save_dirty(migf, edge, migsim_store_chunk(st, edge));
	/* recount: marks went with the chunks, the edge chunk changed size */
	migf->dirty_count = 0;
	migf->dirty_payload = 0;
	xa_for_each_marked(&st->chunks, i, c, MIGSIM_MARK_DIRTY) {
		migf->dirty_count++;
		migf->dirty_payload += c->len;
	}
	migf->resize_pending = true;
	if (size > old_size)
		migf->reinit = true;
	mutex_unlock(&migf->lock);
	wake_up_interruptible(&migf->poll_wait);
	mdev->generation++;
	return 0;

resize:
	ret = migsim_store_resize(st, size);
	if (!ret)
		mdev->generation++;
	return ret;

out_unlock:
	mutex_unlock(&migf->lock);
	return ret;
}

/* Device features the vfio core leaves to the driver. */
int migsim_device_feature(struct vfio_device *vdev, u32 flags,
			  void __user *arg, size_t argsz)
{
	struct migsim_dev *mdev = to_migsim(vdev);
	int ret;

	switch (flags & VFIO_DEVICE_FEATURE_MASK) {
	case VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFO_V2:
		ret = vfio_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET,
					 0);
		if (ret != 1)
			return ret;
		mutex_lock(&mdev->state_mutex);
		WRITE_ONCE(mdev->precopy_info_v2, true);
		mutex_unlock(&mdev->state_mutex);
		return 0;
	}
	return -ENOTTY;
}
