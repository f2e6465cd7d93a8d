/* SPDX-License-Identifier: MIT */
/* One packet and its fds over an AF_UNIX SOCK_SEQPACKET socket. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/macro.h"
#include "proto/codec.h"

/*
 * Packets carry up to PROTO_PACKET_MAX_FDS fds, more than any message
 * declares: proto_decode() enforces the protocol's count, so a receiver
 * sees exactly how many extra fds a peer attached and closes them all.
 * Beyond this room the kernel reports MSG_CTRUNC and closes the excess.
 */
union fd_control {
	struct cmsghdr align;
	uint8_t bytes[CMSG_SPACE(sizeof(int) * PROTO_PACKET_MAX_FDS)];
};

static int errno_to_result(int err)
{
	return err == EINTR || err == EAGAIN || err == EWOULDBLOCK ? -EAGAIN : -err;
}

/* SCM_RIGHTS for fds[0..n) (none when n is 0), in control. */
static void attach_fds(struct msghdr *mh, union fd_control *control, const int *fds, size_t n)
{
	if (n == 0)
		return;
	/* The padding after the fds goes to the kernel too: no stack bytes. */
	memset(control, 0, sizeof(*control));
	mh->msg_control = control->bytes;
	mh->msg_controllen = CMSG_SPACE(sizeof(int) * n);
	struct cmsghdr *c = CMSG_FIRSTHDR(mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	for (size_t i = 0; i < n; i++) /* see collect_fds() */
		memcpy(CMSG_DATA(c) + i * sizeof(int), &fds[i], sizeof(int));
}

int proto_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds)
{
	union fd_control control = {};
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (n_fds > PROTO_PACKET_MAX_FDS)
		return -EINVAL;
	attach_fds(&mh, &control, fds, n_fds);
	n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	if (n < 0)
		return errno_to_result(errno);
	/* A SEQPACKET send is all or nothing. */
	return (size_t)n == len ? 0 : -EIO;
}

int proto_send_many(int sock, const struct proto_packet *p, size_t n)
{
	struct mmsghdr mm[PROTO_SEND_MANY_MAX];
	struct iovec iov[PROTO_SEND_MANY_MAX];
	union fd_control control[PROTO_SEND_MANY_MAX];

	if (n > PROTO_SEND_MANY_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		struct msghdr *mh = &mm[i].msg_hdr;
		iov[i] = (struct iovec){ .iov_base = (void *)p[i].buf, .iov_len = p[i].len };
		*mh = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1 };
		attach_fds(mh, &control[i], &p[i].fd, p[i].fd >= 0);
	}
	int sent = sendmmsg(sock, mm, (unsigned)n, MSG_NOSIGNAL);
	if (sent < 0)
		return errno_to_result(errno);
	/* A SEQPACKET send is all or nothing. */
	for (int i = 0; i < sent; i++)
		if (mm[i].msg_len != p[i].len)
			return -EIO;
	return sent;
}

/* Collects the SCM_RIGHTS fds of a received message into fds[]. */
static size_t collect_fds(struct msghdr *mh, int *fds, size_t room)
{
	size_t n = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		/* cannot exceed room: fds[] holds as many ints as the control buffer */
		k = MIN(k, room - n);
		/* One fd at a time (usually one in all): no call to memcpy(). */
		for (size_t i = 0; i < k; i++)
			memcpy(&fds[n + i], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
		n += k;
	}
	return n;
}

/* What proto_recv() returns for a packet of n bytes that came with mh's
 * control data: the fds go to fds[] (at most max_fds), or are closed with
 * the packet refused. */
static inline ssize_t take_packet(struct msghdr *mh, ssize_t n, int *fds, size_t max_fds,
			   size_t *ret_n_fds)
{
	int got[sizeof(union fd_control) / sizeof(int)];
	size_t n_got = collect_fds(mh, got, ARRAY_SIZE(got));

	*ret_n_fds = 0;
	if (mh->msg_flags & MSG_TRUNC)
		n = -EMSGSIZE;
	else if ((mh->msg_flags & MSG_CTRUNC) || n_got > max_fds)
		n = -ETOOMANYREFS;
	if (n <= 0) {
		/* error, end of stream, or an empty packet that still brought fds */
		proto_close_fds(got, n_got);
		return n;
	}
	for (size_t i = 0; i < n_got; i++) /* as above */
		fds[i] = got[i];
	*ret_n_fds = n_got;
	return n;
}

ssize_t proto_recv(int sock, void *buf, size_t size, int *fds, size_t max_fds,
		   size_t *ret_n_fds)
{
	return proto_recv_flags(sock, 0, buf, size, fds, max_fds, ret_n_fds);
}

ssize_t proto_recv_flags(int sock, int flags, void *buf, size_t size, int *fds, size_t max_fds,
			 size_t *ret_n_fds)
{
	union fd_control control;
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.bytes,
		.msg_controllen = sizeof(control.bytes),
	};

	*ret_n_fds = 0;
	ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
	if (n < 0)
		return errno_to_result(errno);
	return take_packet(&mh, n, fds, max_fds, ret_n_fds);
}

/* Points mm[0..n) at the slots' buffers and control[]. */
static void prepare(struct mmsghdr *mm, struct iovec *iov, union fd_control *control,
		    const struct proto_slot *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		iov[i] = (struct iovec){ .iov_base = s[i].buf, .iov_len = s[i].size };
		mm[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1,
			.msg_control = control[i].bytes, .msg_controllen = sizeof(control[i].bytes) };
	}
}

/* One recvmmsg() into prepared headers, left prepared for the next. */
static int receive(int sock, struct mmsghdr *mm, struct proto_slot *s, size_t n, size_t max_fds)
{
	int got = recvmmsg(sock, mm, (unsigned)n, MSG_CMSG_CLOEXEC | MSG_WAITFORONE, NULL);
	if (got < 0)
		return errno_to_result(errno);
	for (int i = 0; i < got; i++) {
		s[i].len = take_packet(&mm[i].msg_hdr, (ssize_t)mm[i].msg_len, s[i].fds, max_fds,
				       &s[i].n_fds);
		/* The kernel wrote back what it used. */
		mm[i].msg_hdr.msg_controllen = sizeof(union fd_control);
	}
	return got;
}

int proto_recv_many(int sock, struct proto_slot *s, size_t n, size_t max_fds)
{
	struct mmsghdr mm[PROTO_RECV_MANY_MAX];
	struct iovec iov[PROTO_RECV_MANY_MAX];
	union fd_control control[PROTO_RECV_MANY_MAX];

	if (n > PROTO_RECV_MANY_MAX || max_fds > PROTO_PACKET_MAX_FDS)
		return -EINVAL;
	prepare(mm, iov, control, s, n);
	return receive(sock, mm, s, n, max_fds);
}

struct proto_receiver {
	size_t n, max_fds;
	struct mmsghdr mm[PROTO_RECV_MANY_MAX];
	struct iovec iov[PROTO_RECV_MANY_MAX];
	union fd_control control[PROTO_RECV_MANY_MAX];
	struct proto_slot slot[PROTO_RECV_MANY_MAX];
	uint8_t inbox[][PROTO_MAX_MESSAGE];
};

int proto_receiver_new(size_t n, size_t max_fds, struct proto_receiver **ret)
{
	struct proto_receiver *r;

	if (n == 0 || n > PROTO_RECV_MANY_MAX || max_fds > PROTO_PACKET_MAX_FDS)
		return -EINVAL;
	r = malloc(sizeof(*r) + n * sizeof(r->inbox[0]));
	if (!r)
		return -ENOMEM;
	r->n = n;
	r->max_fds = max_fds;
	for (size_t i = 0; i < n; i++)
		r->slot[i] = (struct proto_slot){ .buf = r->inbox[i], .size = sizeof(r->inbox[i]) };
	prepare(r->mm, r->iov, r->control, r->slot, n);
	*ret = r;
	return 0;
}

struct proto_receiver *proto_receiver_free(struct proto_receiver *r)
{
	free(r);
	return NULL;
}

int proto_receiver_recv(struct proto_receiver *r, int sock, struct proto_slot **ret_slots)
{
	*ret_slots = r->slot;
	return receive(sock, r->mm, r->slot, r->n, r->max_fds);
}
