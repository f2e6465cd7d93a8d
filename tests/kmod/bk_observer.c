// SPDX-License-Identifier: GPL-2.0
/*
 * bk_observer - a revocation-aware peer-to-peer dma-buf importer for tests.
 *
 * On a stock kernel nothing in userspace can see that a VFIO dma-buf was
 * revoked: poll() and fdinfo do not change. This module is the importer VFIO
 * wants (allow_peer2peer and an invalidate_mappings callback) and exposes, via
 * /dev/bk_observer, how often each attachment was told to drop its mappings,
 * and lets a test re-attach (which VFIO refuses with ENODEV while revoked).
 * See bk_observer.h for the ioctls.
 *
 * Locking: bk_file.lock serializes the ioctls and release of one open file
 * and protects its slot table and each slot's attach pointer and counters
 * other than invalidations. slot->sgt is protected by the dma-buf's
 * reservation lock, which is also held when invalidate_mappings is called.
 * The callback only touches the slot's atomic counter and sgt.
 */
#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/dma-resv.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "bk_observer.h"

MODULE_IMPORT_NS("DMA_BUF");

struct bk_slot {
	struct dma_buf *dmabuf;			/* reference held while the slot exists */
	struct dma_buf_attachment *attach;	/* NULL while unattached */
	struct sg_table *sgt;			/* under dmabuf->resv */
	atomic64_t invalidations;
	u64 attaches;
	int last_error;
};

struct bk_file {
	struct mutex lock;
	struct bk_slot *slots[BK_OBSERVER_MAX_SLOTS];
};

static struct miscdevice bk_misc;

static void bk_invalidate_mappings(struct dma_buf_attachment *attach)
{
	struct bk_slot *slot = attach->importer_priv;

	dma_resv_assert_held(attach->dmabuf->resv);

	atomic64_inc(&slot->invalidations);
	/*
	 * We never touch the memory: drop the mapping right away, which is
	 * what lets the exporter's revoke finish.
	 */
	if (slot->sgt) {
		dma_buf_unmap_attachment(attach, slot->sgt, DMA_BIDIRECTIONAL);
		slot->sgt = NULL;
	}
}

static const struct dma_buf_attach_ops bk_importer_ops = {
	.allow_peer2peer = true,
	.invalidate_mappings = bk_invalidate_mappings,
};

static int bk_slot_attach(struct bk_slot *slot, u32 flags)
{
	struct dma_buf_attachment *attach;
	struct sg_table *sgt;

	attach = dma_buf_dynamic_attach(slot->dmabuf, bk_misc.this_device,
					&bk_importer_ops, slot);
	if (IS_ERR(attach))
		return PTR_ERR(attach);

	if (flags & BK_OBSERVER_F_MAP) {
		dma_resv_lock(slot->dmabuf->resv, NULL);
		sgt = dma_buf_map_attachment(attach, DMA_BIDIRECTIONAL);
		if (!IS_ERR(sgt))
			slot->sgt = sgt;
		dma_resv_unlock(slot->dmabuf->resv);
		if (IS_ERR(sgt)) {
			dma_buf_detach(slot->dmabuf, attach);
			return PTR_ERR(sgt);
		}
	}

	slot->attach = attach;
	slot->attaches++;
	return 0;
}

static void bk_slot_detach(struct bk_slot *slot)
{
	if (!slot->attach)
		return;

	dma_resv_lock(slot->dmabuf->resv, NULL);
	if (slot->sgt) {
		dma_buf_unmap_attachment(slot->attach, slot->sgt, DMA_BIDIRECTIONAL);
		slot->sgt = NULL;
	}
	dma_resv_unlock(slot->dmabuf->resv);

	dma_buf_detach(slot->dmabuf, slot->attach);
	slot->attach = NULL;
}

static void bk_slot_free(struct bk_slot *slot)
{
	if (!slot)
		return;
	bk_slot_detach(slot);
	dma_buf_put(slot->dmabuf);
	kfree(slot);
}

static long bk_ioctl_attach(struct bk_file *bf, void __user *uarg)
{
	struct bk_observer_attach arg;
	struct bk_slot *slot;
	unsigned int i;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if ((arg.flags & ~BK_OBSERVER_F_MAP) || arg.pad)
		return -EINVAL;

	for (i = 0; i < BK_OBSERVER_MAX_SLOTS; i++)
		if (!bf->slots[i])
			break;
	if (i == BK_OBSERVER_MAX_SLOTS)
		return -ENOSPC;

	slot = kzalloc_obj(*slot);
	if (!slot)
		return -ENOMEM;
	atomic64_set(&slot->invalidations, 0);

	slot->dmabuf = dma_buf_get(arg.fd);
	if (IS_ERR(slot->dmabuf)) {
		ret = PTR_ERR(slot->dmabuf);
		kfree(slot);
		return ret;
	}

	ret = bk_slot_attach(slot, arg.flags);
	if (ret) {
		dma_buf_put(slot->dmabuf);
		kfree(slot);
		return ret;
	}

	arg.slot = i;
	arg.size = slot->dmabuf->size;
	if (copy_to_user(uarg, &arg, sizeof(arg))) {
		bk_slot_free(slot);
		return -EFAULT;
	}
	bf->slots[i] = slot;
	return 0;
}

static struct bk_slot *bk_lookup(struct bk_file *bf, u32 id)
{
	if (id >= BK_OBSERVER_MAX_SLOTS)
		return NULL;
	return bf->slots[id];
}

static long bk_ioctl_status(struct bk_file *bf, void __user *uarg)
{
	struct bk_observer_status arg;
	struct bk_slot *slot;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	slot = bk_lookup(bf, arg.slot);
	if (!slot)
		return -ENOENT;

	arg.state = 0;
	if (slot->attach) {
		arg.state |= BK_OBSERVER_ATTACHED;
		dma_resv_lock(slot->dmabuf->resv, NULL);
		if (slot->sgt)
			arg.state |= BK_OBSERVER_MAPPED;
		dma_resv_unlock(slot->dmabuf->resv);
	}
	arg.invalidations = atomic64_read(&slot->invalidations);
	arg.attaches = slot->attaches;
	arg.last_error = slot->last_error;
	arg.pad = 0;

	if (copy_to_user(uarg, &arg, sizeof(arg)))
		return -EFAULT;
	return 0;
}

static long bk_ioctl_reattach(struct bk_file *bf, void __user *uarg)
{
	struct bk_observer_reattach arg;
	struct bk_slot *slot;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags & ~BK_OBSERVER_F_MAP)
		return -EINVAL;
	slot = bk_lookup(bf, arg.slot);
	if (!slot)
		return -ENOENT;

	bk_slot_detach(slot);
	ret = bk_slot_attach(slot, arg.flags);
	slot->last_error = ret;
	return ret;
}

static long bk_ioctl_detach(struct bk_file *bf, void __user *uarg)
{
	struct bk_slot *slot;
	u32 id;

	if (get_user(id, (u32 __user *)uarg))
		return -EFAULT;
	slot = bk_lookup(bf, id);
	if (!slot)
		return -ENOENT;

	bf->slots[id] = NULL;
	bk_slot_free(slot);
	return 0;
}

static long bk_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct bk_file *bf = file->private_data;
	void __user *uarg = (void __user *)arg;
	long ret;

	mutex_lock(&bf->lock);
	switch (cmd) {
	case BK_OBSERVER_IOC_ATTACH:
		ret = bk_ioctl_attach(bf, uarg);
		break;
	case BK_OBSERVER_IOC_STATUS:
		ret = bk_ioctl_status(bf, uarg);
		break;
	case BK_OBSERVER_IOC_REATTACH:
		ret = bk_ioctl_reattach(bf, uarg);
		break;
	case BK_OBSERVER_IOC_DETACH:
		ret = bk_ioctl_detach(bf, uarg);
		break;
	default:
		ret = -ENOTTY;
		break;
	}
	mutex_unlock(&bf->lock);
	return ret;
}

static int bk_open(struct inode *inode, struct file *file)
{
	struct bk_file *bf;

	bf = kzalloc_obj(*bf);
	if (!bf)
		return -ENOMEM;
	mutex_init(&bf->lock);
	file->private_data = bf;
	return nonseekable_open(inode, file);
}

static int bk_release(struct inode *inode, struct file *file)
{
	struct bk_file *bf = file->private_data;
	unsigned int i;

	for (i = 0; i < BK_OBSERVER_MAX_SLOTS; i++)
		bk_slot_free(bf->slots[i]);
	mutex_destroy(&bf->lock);
	kfree(bf);
	return 0;
}

static const struct file_operations bk_fops = {
	.owner = THIS_MODULE,
	.open = bk_open,
	.release = bk_release,
	.unlocked_ioctl = bk_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice bk_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "bk_observer",
	.fops = &bk_fops,
	.mode = 0600,
};

static int __init bk_init(void)
{
	int ret;

	ret = misc_register(&bk_misc);
	if (ret)
		return ret;

	/*
	 * The misc device is the importing device. It is not a PCI device, so
	 * VFIO (which needs a P2P route) refuses to map for it; give it a DMA
	 * mask anyway so that mapping an ordinary dma-buf (udmabuf, heaps)
	 * with BK_OBSERVER_F_MAP takes the direct path instead of warning.
	 */
	bk_misc.this_device->coherent_dma_mask = DMA_BIT_MASK(64);
	bk_misc.this_device->dma_mask = &bk_misc.this_device->coherent_dma_mask;
	return 0;
}

static void __exit bk_exit(void)
{
	misc_deregister(&bk_misc);
}

module_init(bk_init);
module_exit(bk_exit);

MODULE_DESCRIPTION("barkeep test: revocation-aware peer-to-peer dma-buf importer");
MODULE_LICENSE("GPL");
