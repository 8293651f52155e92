/* deadline.c - the deadline an acquire's callbacks see (deadline.h). */
#include "deadline.h"

/* The deadline of the acquire whose callback runs on this thread; -1
 * outside one. */
static _Thread_local int64_t connect_deadline = -1;

int64_t shp_connect_deadline_ns(void)
{
    return connect_deadline;
}

int64_t shp__callback_deadline_swap(int64_t deadline)
{
    int64_t outer = connect_deadline;
    connect_deadline = deadline;
    return outer;
}
