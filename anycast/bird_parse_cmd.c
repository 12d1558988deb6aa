/*
 * bird_parse_cmd.c - building commands for BIRD's control socket, without
 * I/O: the checks that a command may be sent and that a protocol name may
 * be put into one, and `enable "NAME"` / `disable "NAME"`.
 */
#include <string.h>

#include "bird_parse.h"
#include "bird_parse_int.h"

bool bird_cmd_valid(const char *cmd)
{
	size_t n = 0;

	if (cmd == NULL)
		return false;
	for (; cmd[n] != '\0'; n++) {
		unsigned char c = (unsigned char)cmd[n];

		if (n >= BIRD_CMD_MAX)
			return false;
		if ((c < 0x20 && c != '\t') || c >= 0x7f)
			return false;
	}
	return n > 0;
}

static bool is_name_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool bird_name_valid(const char *name)
{
	size_t n;

	if (name == NULL || !is_name_start((unsigned char)name[0]))
		return false;
	for (n = 1; name[n] != '\0'; n++)
		if (!is_name_start((unsigned char)name[n]) && !bird_is_digit((unsigned char)name[n]))
			return false;
	return n <= BIRD_NAME_MAX;
}

int bird_cmd_ctl(char *buf, size_t size, enum bird_ctl_op op, const char *name)
{
	const char *verb = op == BIRD_CTL_ENABLE ? "enable" : "disable";
	size_t vl = strlen(verb), nl;

	if (!bird_name_valid(name))
		return -1;
	nl = strlen(name);
	/* verb SP " name " NUL */
	if (size < vl + nl + 4)
		return -1;
	memcpy(buf, verb, vl);
	buf[vl] = ' ';
	buf[vl + 1] = '"';
	memcpy(buf + vl + 2, name, nl);
	buf[vl + 2 + nl] = '"';
	buf[vl + 3 + nl] = '\0';
	return 0;
}
