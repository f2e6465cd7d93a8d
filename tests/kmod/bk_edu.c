// SPDX-License-Identifier: GPL-2.0
/*
 * bk_edu - QEMU's edu device as a peer-to-peer dma-buf importer, for tests.
 *
 * The edu device (QEMU docs/specs/edu.rst) has a DMA engine: source 0x80,
 * destination 0x88, count 0x90, command 0x98 (bit 0 run, bit 1 direction:
 * 0 = from the bus into edu, 1 = from edu to the bus), and a 4 KiB internal
 * buffer at device address 0x40000. A transfer completes on a 100 ms timer
 * of QEMU's virtual clock; we poll the run bit. The CPU cannot touch the
 * internal buffer, so data is staged through a coherent RAM buffer.
 *
 * Each open file of /dev/bk_edu<N> imports one dma-buf with a dynamic,
 * peer-to-peer attachment to the edu PCI device and moves bytes between
 * user memory and the buffer by real DMA (see bk_edu.h).
 *
 * Locking:
 * - bk_edu.lock serializes everything that uses the DMA engine, the
 *   staging buffer and the device state (dead, staged_len), and protects
 *   the list of open files and each file's dmabuf/attach pointers, maps
 *   and last_error. It is taken before a reservation lock, never inside.
 * - A file's sgt is protected by its dma-buf's reservation lock. Every DMA
 *   that targets the mapping runs with that lock held, from the map check
 *   to the completion of the transfer, so when invalidate_mappings is called
 *   (with the lock held by the exporter) no transfer is in flight and the
 *   mapping can be dropped at once, which is what lets a revoke finish.
 * - invalidations, last_invalidation_ns and the wait queue need no lock.
 */
#include <linux/atomic.h>
#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/dma-resv.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/iopoll.h>
#include <linux/io.h>
#include <linux/kref.h>
#include <linux/ktime.h>
#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "bk_edu.h"

MODULE_IMPORT_NS("DMA_BUF");

#define EDU_REG_ID		0x00
#define EDU_REG_DMA_SRC		0x80
#define EDU_REG_DMA_DST		0x88
#define EDU_REG_DMA_COUNT	0x90
#define EDU_REG_DMA_CMD		0x98
#define EDU_DMA_RUN		0x1
#define EDU_DMA_TO_BUS		0x2	/* edu buffer -> bus address; clear: bus -> edu */
#define EDU_BUF_ADDR		0x40000
#define EDU_BUF_SIZE		4096
/*
 * QEMU up to 7.2 aborts (hw_error) on a transfer that touches the last byte
 * of the internal buffer (an off-by-one in edu_check_range, fixed in 8.0).
 * Never use that byte: transfers go in chunks of at most 4095 bytes.
 */
#define EDU_CHUNK		(EDU_BUF_SIZE - 1)
static_assert(EDU_CHUNK == BK_EDU_CHUNK);
#define EDU_DMA_TIMEOUT_US	(10 * USEC_PER_SEC)	/* 100 ms nominal, TCG is slow */

struct bk_edu {
	struct pci_dev *pdev;
	void __iomem *mmio;
	void *buf;			/* coherent staging buffer, EDU_BUF_SIZE */
	dma_addr_t buf_dma;
	struct mutex lock;
	struct list_head files;
	bool dead;			/* removed, or the DMA engine hung */
	u32 staged_len;			/* bytes of the last WRITE chunk in edu's buffer */
	int id;
	char name[16];
	struct miscdevice misc;
	struct kref kref;
};

struct bk_edu_file {
	struct bk_edu *edu;
	struct list_head node;			/* in edu->files */
	struct dma_buf *dmabuf;			/* NULL: nothing imported */
	struct dma_buf_attachment *attach;
	struct sg_table *sgt;			/* under dmabuf->resv; NULL: not mapped */
	u64 maps;
	int last_error;
	atomic64_t invalidations;
	atomic64_t last_invalidation_ns;
	wait_queue_head_t wq;
};

static DEFINE_IDA(bk_edu_ida);

static void bk_edu_free(struct kref *kref)
{
	struct bk_edu *edu = container_of(kref, struct bk_edu, kref);

	ida_free(&bk_edu_ida, edu->id);
	mutex_destroy(&edu->lock);
	kfree(edu);
}

/* One transfer of the DMA engine; edu->lock held. */
static int bk_edu_dma(struct bk_edu *edu, u64 src, u64 dst, u32 len, u32 dir)
{
	u64 cmd;
	int ret;

	lockdep_assert_held(&edu->lock);

	writeq(src, edu->mmio + EDU_REG_DMA_SRC);
	writeq(dst, edu->mmio + EDU_REG_DMA_DST);
	writeq(len, edu->mmio + EDU_REG_DMA_COUNT);
	writeq(EDU_DMA_RUN | dir, edu->mmio + EDU_REG_DMA_CMD);
	ret = readq_poll_timeout(edu->mmio + EDU_REG_DMA_CMD, cmd, !(cmd & EDU_DMA_RUN),
				 1000, EDU_DMA_TIMEOUT_US);
	if (ret) {
		/* It may still run: never program it again. */
		dev_err(&edu->pdev->dev, "DMA did not complete; device disabled\n");
		edu->dead = true;
	}
	return ret;
}

static void bk_edu_invalidate_mappings(struct dma_buf_attachment *attach)
{
	struct bk_edu_file *f = attach->importer_priv;

	dma_resv_assert_held(attach->dmabuf->resv);

	/* No transfer is in flight: they all run under this lock. */
	if (f->sgt) {
		dma_buf_unmap_attachment(attach, f->sgt, DMA_BIDIRECTIONAL);
		f->sgt = NULL;
	}
	atomic64_set(&f->last_invalidation_ns, ktime_get_ns());
	atomic64_inc(&f->invalidations);
	wake_up_all(&f->wq);
}

static const struct dma_buf_attach_ops bk_edu_importer_ops = {
	.allow_peer2peer = true,
	.invalidate_mappings = bk_edu_invalidate_mappings,
};

/* Makes sure the attachment is mapped; dmabuf->resv held. */
static int bk_edu_map_locked(struct bk_edu_file *f)
{
	struct sg_table *sgt;

	dma_resv_assert_held(f->dmabuf->resv);

	if (f->sgt)
		return 0;
	sgt = dma_buf_map_attachment(f->attach, DMA_BIDIRECTIONAL);
	if (IS_ERR(sgt)) {
		f->last_error = PTR_ERR(sgt);
		return PTR_ERR(sgt);
	}
	f->sgt = sgt;
	f->maps++;
	f->last_error = 0;
	return 0;
}

static int bk_edu_map(struct bk_edu_file *f)
{
	int ret;

	ret = dma_resv_lock_interruptible(f->dmabuf->resv, NULL);
	if (ret)
		return ret;
	ret = bk_edu_map_locked(f);
	dma_resv_unlock(f->dmabuf->resv);
	return ret;
}

/*
 * Moves len bytes between edu's buffer (from edu_off) and the dma-buf at
 * offset, splitting at segment boundaries of the mapping. Takes the
 * reservation lock for the whole transfer and maps first if needed.
 */
static int bk_edu_peer_dma(struct bk_edu_file *f, u64 offset, u32 edu_off, u32 len,
			   bool to_peer)
{
	struct dma_resv *resv = f->dmabuf->resv;
	struct scatterlist *sg;
	u64 seg_start = 0;
	long wret;
	int ret, i;

	ret = dma_resv_lock_interruptible(resv, NULL);
	if (ret)
		return ret;
	ret = bk_edu_map_locked(f);
	if (ret)
		goto out;

	/* Dynamic importers obey the fences: writers wait for all, readers for writers. */
	wret = dma_resv_wait_timeout(resv, to_peer ? DMA_RESV_USAGE_READ : DMA_RESV_USAGE_WRITE,
				     true, msecs_to_jiffies(10000));
	if (wret <= 0) {
		ret = wret ? wret : -ETIMEDOUT;
		goto out;
	}

	for_each_sgtable_dma_sg(f->sgt, sg, i) {
		u64 seg_len = sg_dma_len(sg);
		u64 pos, n;

		if (!len)
			break;
		if (offset >= seg_start + seg_len) {
			seg_start += seg_len;
			continue;
		}
		pos = offset - seg_start;
		n = min_t(u64, len, seg_len - pos);
		if (to_peer)
			ret = bk_edu_dma(f->edu, EDU_BUF_ADDR + edu_off, sg_dma_address(sg) + pos,
					 n, EDU_DMA_TO_BUS);
		else
			ret = bk_edu_dma(f->edu, sg_dma_address(sg) + pos, EDU_BUF_ADDR + edu_off,
					 n, 0);
		if (ret)
			goto out;
		offset += n;
		edu_off += n;
		len -= n;
		seg_start += seg_len;
	}
	if (len)
		ret = -EINVAL;	/* the mapping is shorter than the buffer */
out:
	dma_resv_unlock(resv);
	return ret;
}

static int bk_edu_check_xfer(struct bk_edu_file *f, const struct bk_edu_xfer *x, u32 flags)
{
	if (x->pad || (x->flags & ~flags))
		return -EINVAL;
	if (!x->len || x->len > BK_EDU_MAX_LEN)
		return -EINVAL;
	if (!f->dmabuf)
		return -ENOENT;
	if (x->offset > f->dmabuf->size || x->len > f->dmabuf->size - x->offset)
		return -EINVAL;
	return 0;
}

static long bk_edu_ioctl_write(struct bk_edu_file *f, void __user *uarg)
{
	struct bk_edu *edu = f->edu;
	struct bk_edu_xfer x;
	u8 __user *data;
	u32 done, n, i;
	int ret;

	if (copy_from_user(&x, uarg, sizeof(x)))
		return -EFAULT;
	ret = bk_edu_check_xfer(f, &x, BK_EDU_F_SEED | BK_EDU_F_STAGED);
	if (ret)
		return ret;
	if (x.flags & BK_EDU_F_STAGED) {
		if (x.flags & BK_EDU_F_SEED)
			return -EINVAL;
		if (x.len > edu->staged_len)
			return -EINVAL;
	}
	data = u64_to_user_ptr(x.data);

	/* Fail before moving anything while the buffer is revoked. */
	ret = bk_edu_map(f);
	if (ret)
		return ret;

	for (done = 0; done < x.len; done += n) {
		n = min_t(u32, x.len - done, EDU_CHUNK);
		if (!(x.flags & BK_EDU_F_STAGED)) {
			if (x.flags & BK_EDU_F_SEED) {
				u8 *p = edu->buf;

				for (i = 0; i < n; i++)
					p[i] = bk_edu_pattern(x.seed, x.offset + done + i);
			} else if (copy_from_user(edu->buf, data + done, n)) {
				return -EFAULT;
			}
			edu->staged_len = 0;
			ret = bk_edu_dma(edu, edu->buf_dma, EDU_BUF_ADDR, n, 0);
			if (ret)
				return ret;
			edu->staged_len = n;
		}
		ret = bk_edu_peer_dma(f, x.offset + done, 0, n, true);
		if (ret)
			return ret;
	}
	return 0;
}

static long bk_edu_ioctl_read(struct bk_edu_file *f, void __user *uarg)
{
	struct bk_edu *edu = f->edu;
	struct bk_edu_xfer x;
	u8 __user *data;
	u32 done, n;
	int ret;

	if (copy_from_user(&x, uarg, sizeof(x)))
		return -EFAULT;
	ret = bk_edu_check_xfer(f, &x, 0);
	if (ret)
		return ret;
	data = u64_to_user_ptr(x.data);

	for (done = 0; done < x.len; done += n) {
		n = min_t(u32, x.len - done, EDU_CHUNK);
		edu->staged_len = 0;
		ret = bk_edu_peer_dma(f, x.offset + done, 0, n, false);
		if (ret)
			return ret;
		ret = bk_edu_dma(edu, EDU_BUF_ADDR, edu->buf_dma, n, EDU_DMA_TO_BUS);
		if (ret)
			return ret;
		if (copy_to_user(data + done, edu->buf, n))
			return -EFAULT;
	}
	return 0;
}

/* Drops the import; edu->lock held. */
static void bk_edu_release_import(struct bk_edu_file *f)
{
	lockdep_assert_held(&f->edu->lock);

	if (!f->dmabuf)
		return;
	dma_resv_lock(f->dmabuf->resv, NULL);
	if (f->sgt) {
		dma_buf_unmap_attachment(f->attach, f->sgt, DMA_BIDIRECTIONAL);
		f->sgt = NULL;
	}
	dma_resv_unlock(f->dmabuf->resv);
	dma_buf_detach(f->dmabuf, f->attach);
	dma_buf_put(f->dmabuf);
	f->attach = NULL;
	f->dmabuf = NULL;
}

static long bk_edu_ioctl_import(struct bk_edu_file *f, void __user *uarg)
{
	struct bk_edu_import arg;
	struct dma_buf_attachment *attach;
	struct dma_buf *dmabuf;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags)
		return -EINVAL;
	if (f->dmabuf)
		return -EBUSY;

	dmabuf = dma_buf_get(arg.fd);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	attach = dma_buf_dynamic_attach(dmabuf, &f->edu->pdev->dev, &bk_edu_importer_ops, f);
	if (IS_ERR(attach)) {
		dma_buf_put(dmabuf);
		return PTR_ERR(attach);
	}
	f->dmabuf = dmabuf;
	f->attach = attach;

	ret = bk_edu_map(f);
	if (!ret) {
		arg.size = dmabuf->size;
		if (copy_to_user(uarg, &arg, sizeof(arg)))
			ret = -EFAULT;
	}
	if (ret)
		bk_edu_release_import(f);
	return ret;
}

static long bk_edu_ioctl_status(struct bk_edu_file *f, void __user *uarg)
{
	struct bk_edu_status st = {};

	if (f->dmabuf) {
		st.state = BK_EDU_IMPORTED;
		st.size = f->dmabuf->size;
		dma_resv_lock(f->dmabuf->resv, NULL);
		if (f->sgt)
			st.state |= BK_EDU_MAPPED;
		dma_resv_unlock(f->dmabuf->resv);
	}
	st.last_error = f->last_error;
	st.maps = f->maps;
	st.invalidations = atomic64_read(&f->invalidations);
	st.last_invalidation_ns = atomic64_read(&f->last_invalidation_ns);
	if (copy_to_user(uarg, &st, sizeof(st)))
		return -EFAULT;
	return 0;
}

/* Without edu->lock: it only sleeps on the file's own counter. */
static long bk_edu_ioctl_wait(struct bk_edu_file *f, void __user *uarg)
{
	struct bk_edu_wait arg;
	long ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.pad)
		return -EINVAL;
	ret = wait_event_interruptible_timeout(f->wq,
			(u64)atomic64_read(&f->invalidations) > arg.invalidations ||
			READ_ONCE(f->edu->dead),
			msecs_to_jiffies(arg.timeout_ms));
	if (ret < 0)
		return -EINTR;
	if ((u64)atomic64_read(&f->invalidations) > arg.invalidations)
		return 0;
	return READ_ONCE(f->edu->dead) ? -ENODEV : -ETIMEDOUT;
}

static long bk_edu_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct bk_edu_file *f = file->private_data;
	struct bk_edu *edu = f->edu;
	void __user *uarg = (void __user *)arg;
	long ret;

	if (cmd == BK_EDU_IOC_WAIT)
		return bk_edu_ioctl_wait(f, uarg);

	if (mutex_lock_interruptible(&edu->lock))
		return -EINTR;
	if (edu->dead && cmd != BK_EDU_IOC_STATUS && cmd != BK_EDU_IOC_RELEASE) {
		ret = -ENODEV;
		goto out;
	}
	switch (cmd) {
	case BK_EDU_IOC_IMPORT:
		ret = bk_edu_ioctl_import(f, uarg);
		break;
	case BK_EDU_IOC_RELEASE:
		ret = f->dmabuf ? 0 : -ENOENT;
		bk_edu_release_import(f);
		break;
	case BK_EDU_IOC_WRITE:
		ret = bk_edu_ioctl_write(f, uarg);
		break;
	case BK_EDU_IOC_READ:
		ret = bk_edu_ioctl_read(f, uarg);
		break;
	case BK_EDU_IOC_STATUS:
		ret = bk_edu_ioctl_status(f, uarg);
		break;
	case BK_EDU_IOC_MAP:
		ret = f->dmabuf ? bk_edu_map(f) : -ENOENT;
		break;
	default:
		ret = -ENOTTY;
		break;
	}
out:
	mutex_unlock(&edu->lock);
	return ret;
}

static int bk_edu_open(struct inode *inode, struct file *file)
{
	/* misc_open() holds misc_mtx: remove() cannot run misc_deregister() now. */
	struct bk_edu *edu = container_of(file->private_data, struct bk_edu, misc);
	struct bk_edu_file *f;

	f = kzalloc_obj(*f);
	if (!f)
		return -ENOMEM;
	f->edu = edu;
	atomic64_set(&f->invalidations, 0);
	atomic64_set(&f->last_invalidation_ns, 0);
	init_waitqueue_head(&f->wq);
	kref_get(&edu->kref);

	mutex_lock(&edu->lock);
	list_add_tail(&f->node, &edu->files);
	mutex_unlock(&edu->lock);

	file->private_data = f;
	return nonseekable_open(inode, file);
}

static int bk_edu_release(struct inode *inode, struct file *file)
{
	struct bk_edu_file *f = file->private_data;
	struct bk_edu *edu = f->edu;

	mutex_lock(&edu->lock);
	bk_edu_release_import(f);
	list_del(&f->node);
	mutex_unlock(&edu->lock);
	kfree(f);
	kref_put(&edu->kref, bk_edu_free);
	return 0;
}

static const struct file_operations bk_edu_fops = {
	.owner = THIS_MODULE,
	.open = bk_edu_open,
	.release = bk_edu_release,
	.unlocked_ioctl = bk_edu_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static int bk_edu_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct bk_edu *edu;
	u32 ident;
	int ret;

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	ret = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (ret)
		return ret;

	edu = kzalloc_obj(*edu);
	if (!edu)
		return -ENOMEM;
	mutex_init(&edu->lock);
	INIT_LIST_HEAD(&edu->files);
	kref_init(&edu->kref);
	edu->pdev = pdev;
	edu->id = ida_alloc(&bk_edu_ida, GFP_KERNEL);
	if (edu->id < 0) {
		ret = edu->id;
		mutex_destroy(&edu->lock);
		kfree(edu);
		return ret;
	}

	edu->mmio = pcim_iomap_region(pdev, 0, KBUILD_MODNAME);
	if (IS_ERR(edu->mmio)) {
		ret = PTR_ERR(edu->mmio);
		goto err_put;
	}
	ident = readl(edu->mmio + EDU_REG_ID);
	if ((ident & 0xff) != 0xed) {
		dev_err(&pdev->dev, "not an edu device (id %#x)\n", ident);
		ret = -ENODEV;
		goto err_put;
	}
	edu->buf = dmam_alloc_coherent(&pdev->dev, EDU_BUF_SIZE, &edu->buf_dma, GFP_KERNEL);
	if (!edu->buf) {
		ret = -ENOMEM;
		goto err_put;
	}
	pci_set_master(pdev);

	snprintf(edu->name, sizeof(edu->name), "bk_edu%d", edu->id);
	edu->misc.minor = MISC_DYNAMIC_MINOR;
	edu->misc.name = edu->name;
	edu->misc.fops = &bk_edu_fops;
	edu->misc.mode = 0600;
	edu->misc.parent = &pdev->dev;
	ret = misc_register(&edu->misc);
	if (ret)
		goto err_clear_master;

	pci_set_drvdata(pdev, edu);
	dev_info(&pdev->dev, "edu version %#x, /dev/%s\n", ident >> 16, edu->name);
	return 0;

err_clear_master:
	pci_clear_master(pdev);
err_put:
	kref_put(&edu->kref, bk_edu_free);
	return ret;
}

static void bk_edu_remove(struct pci_dev *pdev)
{
	struct bk_edu *edu = pci_get_drvdata(pdev);
	struct bk_edu_file *f;

	misc_deregister(&edu->misc);

	/* Open files stay; they see ENODEV and never touch the device again. */
	mutex_lock(&edu->lock);
	edu->dead = true;
	list_for_each_entry(f, &edu->files, node) {
		bk_edu_release_import(f);
		wake_up_all(&f->wq);
	}
	mutex_unlock(&edu->lock);

	pci_clear_master(pdev);
	kref_put(&edu->kref, bk_edu_free);
}

static const struct pci_device_id bk_edu_ids[] = {
	{ PCI_DEVICE(0x1234, 0x11e8) },
	{ }
};
MODULE_DEVICE_TABLE(pci, bk_edu_ids);

static struct pci_driver bk_edu_driver = {
	.name = "bk_edu",
	.id_table = bk_edu_ids,
	.probe = bk_edu_probe,
	.remove = bk_edu_remove,
};
module_pci_driver(bk_edu_driver);

MODULE_DESCRIPTION("barkeep test: QEMU edu device as a peer-to-peer dma-buf importer");
MODULE_LICENSE("GPL");
