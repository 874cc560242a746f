/* table.c — placeholder until the table format lands. */
