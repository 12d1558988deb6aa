/*
 * bird_parse_int.h - what the files of BIRD's control-socket protocol
 * (bird_parse.h) need from each other (private to them):
 *
 *   bird_parse.c        the reply reader
 *   bird_parse_cmd.c    building commands
 *   bird_parse_reply.c  the parsers of replies
 */
#ifndef POPNODE_BIRD_PARSE_INT_H
#define POPNODE_BIRD_PARSE_INT_H

#include <stdbool.h>

/* c is '0'..'9' (in bird_parse.c; codes, names, numbers). */
bool bird_is_digit(unsigned char c);

#endif
