/* dlist.h: intrusive doubly linked lists: any struct with `next` and `prev` pointers to its own
 * type, and a head pointer. For the lists of parked requests and of transfers; no allocation. */
#ifndef GW_DLIST_H
#define GW_DLIST_H

/* Puts node n first in the list starting at head (an lvalue). */
#define GW_DLIST_PUSH(head, n)                  \
    do {                                        \
        (n)->prev = NULL;                       \
        (n)->next = (head);                     \
        if (head) (head)->prev = (n);           \
        (head) = (n);                           \
    } while (0)

/* Takes node n out of the list starting at head; n's links are cleared. */
#define GW_DLIST_REMOVE(head, n)                            \
    do {                                                    \
        if ((n)->prev) (n)->prev->next = (n)->next;         \
        else (head) = (n)->next;                            \
        if ((n)->next) (n)->next->prev = (n)->prev;         \
        (n)->next = (n)->prev = NULL;                       \
    } while (0)

#endif
