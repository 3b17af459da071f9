-- tests/mysql/corpus.sql — the MySQL/MariaDB differential corpus.
--
-- tests/mysql/differential.py runs every entry as root on one autocommit
-- connection (CLIENT_MULTI_STATEMENTS on) inside a fresh scratch database,
-- once straight against MariaDB and once through danxia, and
-- tests/tests/mysql_differential.rs compares the two runs entry by entry.
--
-- Format: entries are separated by lines holding only `-- next`. An entry
-- may span lines and hold several statements (sent as one COM_QUERY). An
-- optional first line `-- params: [JSON]` binds `?` placeholders. `{db}` is
-- the scratch database's name.
--
-- Rules (an entry's output must not differ between two runs): no NOW(),
-- RAND() without a seed, UUID(), CONNECTION_ID(), timings, table
-- statistics (table_rows, cardinality, EXPLAIN of scans), SHOW DATABASES or
-- PROCESSLIST; every multi-row SELECT has an ORDER BY that fixes the order;
-- never the two characters percent-s (mysql-connector's prepared cursor
-- rewrites them to a placeholder); objects only in the scratch database.
-- After editing, run it direct against direct (docs/testing.md): 0 different.
-- next
select 1
-- next
-- params: []
select 1 as one, 'two' as two, null as three, 4.5 as four, -7 as five
-- next
create table types_t (
    id int not null auto_increment primary key,
    ti tinyint, si smallint unsigned, mi mediumint, bi bigint unsigned,
    de decimal(20,6), fl float, db double, bt bit(8),
    dt date, tm time(6), dtm datetime(6), ts timestamp(3) null default null, yr year,
    ch char(4), vc varchar(50), bn binary(4), vb varbinary(16),
    tb tinyblob, bl blob, tx text, en enum('red','green','blue'), st set('a','b','c'),
    js json, ip inet6, uu uuid
) engine=InnoDB default charset=utf8mb4
-- next
insert into types_t (ti, si, mi, bi, de, fl, db, bt, dt, tm, dtm, ts, yr, ch, vc, bn, vb, tb, bl, tx, en, st, js, ip, uu)
values (-128, 65535, -8388608, 18446744073709551615, 12345678901234.123456, 1.5, 2.25e-300, b'10100101',
        '2024-02-29', '-838:59:59.000000', '9999-12-31 23:59:59.999999', '2001-02-03 04:05:06.789', 2024,
        'abcd', 'varchar', 'bin', x'00ff10', x'00', x'deadbeef', 'text', 'green', 'a,c',
        '{"k": [1, 2, {"n": null}]}', '2001:db8::1', '123e4567-e89b-12d3-a456-426655440000')
-- next
insert into types_t (ti, vc) values (127, 'second'), (0, 'third'), (null, null)
-- next
select * from types_t order by id
-- next
-- params: []
select id, hex(bt), bt + 0, hex(bn), hex(vb), length(bn), js, json_type(js) from types_t order by id
-- next
-- params: []
select last_insert_id()
-- next
insert into types_t (ti) values (128)
-- next
-- params: []
insert into types_t (vc) values (repeat('x', 51))
-- next
insert into types_t (en) values ('purple')
-- next
insert into types_t (dt) values ('2023-02-30')
-- next
insert into types_t (js) values ('{not json')
-- next
insert into types_t (ip) values ('not-an-address')
-- next
insert into types_t (id, vc) values (1, 'duplicate')
-- next
insert ignore into types_t (id, vc) values (1, 'duplicate ignored')
-- next
show warnings
-- next
-- params: []
select 1/0
-- next
show warnings
-- next
select cast('12abc' as signed), cast('abc' as unsigned), cast('2024-13-01' as date)
-- next
show warnings
-- next
get diagnostics @n = number
-- next
select @n
-- next
selec 1
-- next
-- params: []
select * from no_such_table
-- next
select no_such_column from types_t
-- next
select nosuchfunc(1)
-- next
select 1 from types_t a, types_t b where id = 1
-- next
select (select id from types_t)
-- next
select (1, 2) = 1
-- next
insert into types_t (id) values (1, 2)
-- next
select count(*) from types_t group by count(*)
-- next
set @@session.no_such_variable = 1
-- next
set session sql_mode = 'NOT_A_MODE'
-- next
-- params: []
select 18446744073709551615 + 1
-- next
select 1e308 * 10
-- next
use no_such_database
-- next
drop table no_such_table
-- next
create table types_t (x int)
-- next
create table dup_col (a int, a int)
-- next
create table people (
    id int primary key,
    name varchar(100) not null,
    city varchar(50),
    born date,
    salary decimal(10,2),
    boss int null,
    unique key uk_name (name),
    key k_city (city)
) default charset=utf8mb4
-- next
insert into people values
    (1, 'Ada', 'London', '1815-12-10', 1000.00, null),
    (2, 'Grace', 'New York', '1906-12-09', 2000.50, 1),
    (3, 'Linus', 'Helsinki', '1969-12-28', 1500.25, 1),
    (4, '张三', '北京', '1990-01-01', 800.00, 2),
    (5, '李四', '上海', '1985-06-15', null, 2),
    (6, 'Émile', 'Paris', '1970-07-14', 1200.00, 3),
    (7, 'Nobody', null, null, null, null)
-- next
insert into people values (8, 'Ada', 'Dup', null, null, null)
-- next
insert into people (id, name) values (9, null)
-- next
create table orders (
    id int auto_increment primary key,
    person int not null,
    amount decimal(10,2) not null,
    placed date not null,
    constraint fk_person foreign key (person) references people(id),
    constraint chk_amount check (amount >= 0)
) default charset=utf8mb4
-- next
insert into orders (person, amount, placed) values
    (1, 10.00, '2024-01-01'), (1, 20.00, '2024-01-15'), (2, 5.50, '2024-02-01'),
    (3, 100.00, '2024-02-10'), (4, 42.00, '2024-03-01'), (4, 0.00, '2024-03-02'),
    (5, 7.25, '2024-03-03'), (6, 3.00, '2024-03-04')
-- next
insert into orders (person, amount, placed) values (99, 1, '2024-01-01')
-- next
insert into orders (person, amount, placed) values (1, -1, '2024-01-01')
-- next
delete from people where id = 1
-- next
-- params: []
select p.name, o.amount, o.placed from people p join orders o on o.person = p.id order by o.id
-- next
-- params: []
select p.name, count(o.id) as n, sum(o.amount) as total from people p left join orders o on o.person = p.id group by p.id, p.name order by p.id
-- next
select p.name, o.id from orders o right join people p on o.person = p.id where o.id is null order by p.id
-- next
select a.name, b.name from people a cross join people b where a.id < 3 and b.id < 3 order by a.id, b.id
-- next
-- params: []
select a.name as worker, b.name as boss from people a join people b on a.boss = b.id order by a.id
-- next
select name from people natural join (select 2 as id) x
-- next
select straight_join p.name from people p, orders o where o.person = p.id and o.amount > 40 order by p.name
-- next
select p.name, o.amount from people p join orders o using (id) order by p.id
-- next
-- params: []
select city, count(*), min(born), max(born), avg(salary), sum(salary), std(salary), variance(salary), bit_or(id)
from people group by city order by city
-- next
-- params: []
select city, sum(salary) from people group by city with rollup
-- next
select boss, count(*) as c from people group by boss having c > 1 order by boss
-- next
-- params: []
select group_concat(name order by name separator ' | ') from people
-- next
select group_concat(distinct city order by city) from people where city is not null
-- next
select distinct boss from people order by boss
-- next
select name from people order by salary desc, name limit 3
-- next
-- params: []
select name from people order by id limit 2 offset 3
-- next
select name from people order by id limit 4, 2
-- next
select id from people where id < 3 union select id from orders where id < 4 order by id
-- next
-- params: []
select id from people where id < 3 union all select id from orders where id < 4 order by id
-- next
select id from people intersect select person from orders order by id
-- next
-- params: []
select id from people except select person from orders order by id
-- next
select name from people where id in (select person from orders where amount > 10) order by name
-- next
select name from people p where exists (select 1 from orders o where o.person = p.id and o.amount = 0) order by name
-- next
-- params: []
select name, (select max(amount) from orders o where o.person = p.id) as biggest from people p order by id
-- next
select t.c, t.n from (select city as c, count(*) as n from people group by city) t order by t.c
-- next
with big as (select person, sum(amount) s from orders group by person)
select p.name, big.s from big join people p on p.id = big.person where big.s > 10 order by big.s desc
-- next
with recursive r(n) as (select 1 union all select n + 1 from r where n < 10) select n, n * n from r order by n
-- next
-- params: []
with recursive chain as (
    select id, name, boss, 0 as depth from people where boss is null and id = 1
    union all
    select p.id, p.name, p.boss, c.depth + 1 from people p join chain c on p.boss = c.id
) select * from chain order by depth, id
-- next
-- params: []
select id, name, row_number() over (order by id) rn, rank() over (order by salary) rk,
       lag(name) over (order by id) prev, sum(salary) over (partition by boss order by id) running
from people order by id
-- next
select person, amount, first_value(amount) over w, last_value(amount) over w, ntile(2) over (order by id)
from orders window w as (partition by person order by id rows between unbounded preceding and unbounded following) order by id
-- next
-- params: []
select name, case when salary > 1500 then 'high' when salary > 900 then 'mid' else 'low' end as band,
       if(city is null, 'nowhere', city), ifnull(salary, -1), coalesce(null, boss, 0), nullif(id, 3)
from people order by id
-- next
-- params: []
select null = null, null <=> null, null is null, null is not null, 1 + null, concat('a', null), concat_ws('-', 'a', null, 'b')
-- next
-- params: []
select count(*), count(salary), count(city), sum(salary), avg(salary) from people
-- next
select name from people order by city, name
-- next
select name from people order by city is null, city desc, name
-- next
select sum(x) from (select null as x union all select null) t
-- next
-- params: []
select concat_ws(',', 'a', 'b'), substring('danxia firewall', 8), locate('wall', 'danxia firewall'),
       replace('aaa', 'a', 'bb'), lpad('7', 3, '0'), rpad('x', 3, '.'), upper('abc'), lower('ÀÉÎ'),
       reverse('abc'), trim('  t  '), repeat('ab', 3), space(2), left('hello', 2), right('hello', 2)
-- next
-- params: []
select char_length('数据库防火墙'), length('数据库防火墙'), octet_length('🔥'), char_length('🔥'), hex('🔥')
-- next
-- params: []
select '中文' as zh, '日本語' as ja, '한국어' as ko, 'Ελληνικά' as el, 'العربية' as ar, 'עברית' as he
-- next
-- params: []
select '🔥🚀👍🏽' as emoji, 'e\u0301' as literal_u, 'é' as combining, 'Z̤͔ͧ̑̓' as zalgo
-- next
-- params: []
select '乗' as k, hex(convert('乗' using gbk)) as gbk_bytes, hex(convert('表' using gbk)), hex(convert('数据' using gbk))
-- next
select convert(x'815c' using gbk) = '乗', convert(x'b1ed' using gbk), hex(convert('中文' using latin1))
-- next
select _gbk x'd6d0cec4' as from_gbk, charset(_gbk x'd6d0cec4'), collation(convert('a' using gbk))
-- next
create table zh (id int primary key, name varchar(20) character set gbk, note varchar(100) character set utf8mb4)
-- next
insert into zh values (1, '乗客', '乗 has 0x5C as its second GBK byte'), (2, '表格', '表 too'), (3, 'ASCII', 'plain')
-- next
-- params: []
select id, name, hex(name), note from zh order by id
-- next
insert into zh values (4, '🔥', 'emoji is not in GBK')
-- next
select * from zh where name like '乗%' order by id
-- next
-- params: []
select 'a\nb' as newline, 'tab\there' as tab, 'back\\slash' as backslash, 'it\'s' as quote1, 'it''s' as quote2,
       "dq \"inner\"" as dq, 'nul\0byte' as nul, 'ctrl-z \Z' as ctrlz, '\%\_' as like_escapes, '\q' as unknown
-- next
select hex('\0\'\"\b\n\r\t\Z\\')
-- next
select 'a;b' as s; select "c;d" as t; select 1 /* ; */ as u
-- next
select 'a\';b' as tricky; select 2 as after_tricky
-- next
set session sql_mode = concat(@@session.sql_mode, ',NO_BACKSLASH_ESCAPES')
-- next
select 'a\b' as raw_backslash, 'x\' as ends_in_backslash
-- next
select 'c:\path\' as p; select 3 as after_raw
-- next
set session sql_mode = default
-- next
select 'back to \\ escapes' as restored
-- next
select 'a' like 'A', 'a' like binary 'A', 'a_c' like 'a\_c', 'abc' like 'a%', 'a%c' like 'a|%c' escape '|'
-- next
select 'abc' regexp '^a.c$', regexp_replace('a1b22c333', '[0-9]+', '#'), regexp_substr('key=value', '[a-z]+$'), 'ß' = 'ss'
-- next
select 'a' = 'A', 'a' = binary 'A', strcmp('a', 'b'), 'abc' collate utf8mb4_bin < 'ABC' collate utf8mb4_bin
-- next
-- params: []
select x'00ff' as hex_lit, 0x41424344 as hex_num, b'01000001' as bit_lit, unhex('E4B8AD') as unhexed, hex(x'00ff5c27')
-- next
create table blobs (id int primary key, b longblob, t varbinary(300))
-- next
insert into blobs values (1, x'000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff', x'5c00275c22')
-- next
insert into blobs values (2, repeat(x'00ff', 100000), ''), (3, null, null), (4, '', x'')
-- next
-- params: []
select id, length(b), md5(b), sha2(b, 256), hex(t) from blobs order by id
-- next
-- params: []
select id, b, t from blobs order by id
-- next
select b from blobs where id = 1 and b like concat('%', x'5c', '%')
-- next
select compress('danxia'), uncompress(compress('danxia')), to_base64('数据'), from_base64('5pWw5o2u'), md5('x'), sha1(''), crc32('danxia')
-- next
-- params: []
select repeat('x', 5000000) as five_megabytes
-- next
-- params: []
select seq, md5(seq) from seq_1_to_20000 order by seq
-- next
-- params: []
select 0.1 + 0.2, 1/3, 10 div 3, 10 mod 3, -7 % 3, pow(2, 64), sqrt(2), round(2.5), round(-2.5), truncate(1.999, 2), format(1234567.891, 2)
-- next
-- params: []
select ~0, -9223372036854775808, 9223372036854775807, 1 << 63, 5 & 3, 5 | 3, 5 ^ 3, bit_count(255)
-- next
-- params: []
select cast(1.5 as decimal(5,2)), cast(123.456 as decimal(4,1)), 1e-10, 1.0e+20, cast('1e400' as double)
-- next
select 1--1
-- next
select 1 -- 1
-- next
select 2 # hash comment ; select 'not run'
-- next
# a whole-line hash comment
select 3 as after_hash_comment
-- next
select /* inline ; comment */ 4 as after_block_comment
-- next
select 5 /*! + 1 */ as executable_comment
-- next
select 6 /*!50700 + 10 */ as versioned_comment
-- next
select 7 /*M! + 100 */ as mariadb_comment
-- next
select 8 /*!999999 + 1000 */ as future_version_comment
-- next
/*!40101 set @saved = 1 */
-- next
select @saved
-- next
-- params: []
select date_add('2024-01-31', interval 1 month), datediff('2024-03-01', '2024-02-01'), date_format('2024-02-29', '%Y/%m/%d %W'),
       dayofweek('2024-02-29'), last_day('2023-02-01'), str_to_date('29.02.2024', '%d.%m.%Y'), makedate(2024, 60)
-- next
-- params: []
select timestampdiff(minute, '2024-01-01 00:00:00', '2024-01-02 01:30:00'), sec_to_time(3661), time_to_sec('01:01:01'),
       addtime('10:00:00', '02:30:00'), extract(year_month from '2024-02-29'), week('2024-12-31', 3)
-- next
-- params: []
select json_object('a', 1, 'b', json_array(1, 'x', null)), json_extract('{"a": {"b": [10, 20]}}', '$.a.b[1]'),
       json_unquote(json_extract('{"s": "中文"}', '$.s')), json_valid('{'), json_length('[1,2,3]'), json_keys('{"x":1,"y":2}')
-- next
select json_arrayagg(name order by id), json_objectagg(id, city) from people where id < 4
-- next
select id, json_value(js, '$.k[0]'), js->'$.k' from types_t where js is not null order by id
-- next
-- params: []
select inet_aton('10.0.0.1'), inet_ntoa(167772161), inet6_aton('::1'), is_ipv4('1.2.3.4'), is_ipv6('::1')
-- next
select st_astext(point(1, 2)), st_astext(st_geomfromtext('LINESTRING(0 0, 1 1)')), st_distance(point(0, 0), point(3, 4))
-- next
select rand(42), rand(42) * 100
-- next
select benchmark(10, md5('x')), sleep(0), coercibility('a'), charset(1), database(), current_user()
-- next
select @@version = version(), @@character_set_client, @@character_set_results, @@collation_connection, @@autocommit, @@in_transaction
-- next
set @a := 5, @b = 'text', @c = null, @d = x'ff', @e = 1.5
-- next
-- params: []
select @a + 1, @b, @c, @d, @e, @undefined
-- next
select @a := @a + 1, @a
-- next
select count(*) into @cnt from people
-- next
select @cnt
-- next
prepare s from 'select ? + ? as sum, ? as text'
-- next
set @x = 1, @y = 2, @t = '参数'
-- next
execute s using @x, @y, @t
-- next
execute s using 10, 20, 'literal'
-- next
execute s using @x
-- next
deallocate prepare s
-- next
execute s using @x, @y, @t
-- next
prepare ins from 'insert into orders (person, amount, placed) values (?, ?, ?)'
-- next
set @p = 2, @amt = 9.99, @d = '2024-04-01'
-- next
execute ins using @p, @amt, @d
-- next
select person, amount, placed from orders where id = last_insert_id()
-- next
execute ins using 99, 1, '2024-01-01'
-- next
deallocate prepare ins
-- next
prepare bad from 'selec broken'
-- next
prepare dyn from concat('select count(*) from ', 'people')
-- next
execute dyn
-- next
execute immediate 'select ? * 2 as doubled' using 21
-- next
begin
-- next
insert into orders (person, amount, placed) values (3, 1.00, '2024-05-01')
-- next
select @@in_transaction, count(*) from orders
-- next
rollback
-- next
select count(*) from orders
-- next
start transaction
-- next
insert into orders (person, amount, placed) values (3, 2.00, '2024-05-02')
-- next
savepoint sp1
-- next
insert into orders (person, amount, placed) values (3, 3.00, '2024-05-03')
-- next
rollback to savepoint sp1
-- next
release savepoint sp1
-- next
commit
-- next
select amount, placed from orders where person = 3 order by id
-- next
rollback to savepoint no_such_savepoint
-- next
start transaction read only
-- next
insert into orders (person, amount, placed) values (3, 4.00, '2024-05-04')
-- next
commit
-- next
set autocommit = 0
-- next
update orders set amount = amount + 1 where person = 3
-- next
select @@autocommit, @@in_transaction
-- next
rollback
-- next
set autocommit = 1
-- next
begin; insert into orders (person, amount, placed) values (6, 6.00, '2024-06-06'); commit
-- next
select id from orders where person = 6 order by id for update
-- next
select id from orders where person = 6 order by id lock in share mode
-- next
-- params: []
update people set salary = salary * 1.1 where boss = 2
-- next
-- params: []
update people set city = 'Nowhere' where id = 999
-- next
update people p join orders o on o.person = p.id set p.salary = p.salary + o.amount where o.amount = 42
-- next
update orders set amount = amount + 0.01 order by id desc limit 2
-- next
select id, name, salary from people order by id
-- next
-- params: []
insert into people (id, name, city) values (2, 'Grace', 'Arlington') on duplicate key update city = values(city)
-- next
insert into people (id, name, city) values (2, 'Grace', 'Arlington') on duplicate key update city = values(city)
-- next
replace into people (id, name, city) values (7, 'Somebody', 'Here')
-- next
insert into people (id, name) select id + 100, concat(name, ' copy') from people where id < 3
-- next
insert into people (id, name) values (200, 'returning') returning id, name, upper(name)
-- next
delete from people where id >= 100 returning id, name
-- next
delete o from orders o join people p on p.id = o.person where p.name = 'Émile'
-- next
-- params: []
delete from orders where amount < 1 order by id limit 1
-- next
-- params: []
select person, amount from orders order by id
-- next
create table multi_t (x int)
-- next
insert into multi_t values (1), (2); update multi_t set x = x * 10; select x from multi_t order by x
-- next
select 1; selec 2; select 3
-- next
delete from multi_t where x = 10; select count(*) from multi_t; drop table multi_t
-- next
create table ddl_t (a int)
-- next
alter table ddl_t add column b varchar(10) default 'def', add index ib (b)
-- next
alter table ddl_t modify a bigint not null, rename column b to bee
-- next
insert into ddl_t (a) values (1), (2)
-- next
rename table ddl_t to ddl_renamed
-- next
create table ddl_like like ddl_renamed
-- next
create table ddl_as as select a, bee from ddl_renamed where a > 1
-- next
show create table ddl_renamed
-- next
show create table ddl_like
-- next
select * from ddl_as
-- next
truncate table ddl_renamed
-- next
select count(*) from ddl_renamed
-- next
create temporary table tmp_t (v int)
-- next
insert into tmp_t values (1), (2), (3)
-- next
select sum(v) from tmp_t
-- next
drop temporary table tmp_t
-- next
create view rich as select name, salary from people where salary > 1000
-- next
select * from rich order by name
-- next
show create view rich
-- next
create or replace view rich as select name from people where salary > 1500
-- next
select * from rich order by name
-- next
drop view rich
-- next
create index idx_placed on orders (placed)
-- next
drop index idx_placed on orders
-- next
create sequence seq_t start with 100 increment by 5
-- next
select nextval(seq_t), nextval(seq_t), lastval(seq_t)
-- next
select next value for seq_t
-- next
drop sequence seq_t
-- next
create table part_t (id int, v varchar(10)) partition by hash(id) partitions 3
-- next
insert into part_t values (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')
-- next
select * from part_t partition (p1) order by id
-- next
create function twice(x int) returns int deterministic return x * 2
-- next
-- params: []
select twice(21), twice(null)
-- next
create procedure two_sets()
begin
    select 1 as first_set;
    select 'x' as second_set, 2 as n union all select 'y', 3 order by n;
end
-- next
call two_sets()
-- next
create procedure with_out(in x int, out y int)
begin
    set y = x * 3;
end
-- next
call with_out(5, @r)
-- next
select @r
-- next
create procedure raises()
begin
    signal sqlstate '45000' set message_text = 'custom failure from a procedure', mysql_errno = 1644;
end
-- next
call raises()
-- next
create procedure loops(n int)
begin
    declare i int default 0;
    create temporary table if not exists loop_t (v int);
    while i < n do
        insert into loop_t values (i);
        set i = i + 1;
    end while;
    select count(*), sum(v) from loop_t;
    drop temporary table loop_t;
end
-- next
call loops(50)
-- next
create table audit_t (msg varchar(100))
-- next
create trigger people_ai after insert on people for each row insert into audit_t values (concat('added ', new.name))
-- next
insert into people (id, name) values (300, 'Trigger Test')
-- next
-- params: []
select msg from audit_t
-- next
show create procedure two_sets
-- next
show create function twice
-- next
-- params: []
show tables
-- next
show full tables
-- next
show columns from people
-- next
show full columns from zh
-- next
-- params: []
describe orders
-- next
desc people name
-- next
explain people
-- next
-- params: []
explain select * from people where id = 3
-- next
explain select 1
-- next
show variables like 'character_set_c%'
-- next
show session variables where variable_name in ('autocommit', 'sql_mode', 'time_zone')
-- next
show collation where collation in ('gbk_chinese_ci', 'utf8mb4_bin', 'latin1_swedish_ci')
-- next
show character set like 'gbk'
-- next
show databases like 'test'
-- next
show grants for current_user
-- next
select trigger_name, event_manipulation, event_object_table, action_statement, action_timing
from information_schema.triggers where trigger_schema = database() order by trigger_name
-- next
show procedure status where 1 = 0
-- next
show errors
-- next
show warnings
-- next
-- params: []
select table_name, table_type, engine from information_schema.tables where table_schema = database() order by table_name
-- next
-- params: []
select column_name, ordinal_position, column_default, is_nullable, data_type, character_maximum_length, numeric_precision,
       numeric_scale, character_set_name, column_type, column_key, extra
from information_schema.columns where table_schema = database() and table_name = 'types_t' order by ordinal_position
-- next
select constraint_name, column_name, referenced_table_name, referenced_column_name
from information_schema.key_column_usage where table_schema = database() order by table_name, constraint_name, ordinal_position
-- next
select index_name, seq_in_index, column_name, non_unique from information_schema.statistics
where table_schema = database() and table_name = 'people' order by index_name, seq_in_index
-- next
select routine_name, routine_type, data_type from information_schema.routines where routine_schema = database() order by routine_name
-- next
select character_set_name, default_collate_name, maxlen from information_schema.character_sets
where character_set_name in ('gbk', 'utf8mb4', 'latin1', 'binary') order by 1
-- next
select schema_name, default_character_set_name from information_schema.schemata where schema_name = database()
-- next
select count(*) > 100 from information_schema.collations
-- next
analyze table people
-- next
check table orders
-- next
optimize table zh
-- next
checksum table people
-- next
lock tables people read
-- next
select count(*) from people
-- next
unlock tables
-- next
handler people open
-- next
handler people read `PRIMARY` first
-- next
handler people read `PRIMARY` next
-- next
handler people close
-- next
do 1 + 1
-- next
use information_schema
-- next
select database()
-- next
use {db}
-- next
select database(), count(*) from people
-- next
-- params: [1, "one", null]
select ? as n, ? as s, ? as nothing
-- next
-- params: [-9223372036854775808, 18446744073709551615, {"float": "1e-300"}, {"decimal": "12345678901234567890.123456789"}]
select ? as min_bigint, ? as max_ubigint, ? as tiny_double, ? as big_decimal
-- next
-- params: ["数据库防火墙 🔥", "it's \"quoted\" \\ back\\slash; -- not a comment", ""]
select ? as unicode, ? as tricky, ? as empty
-- next
-- params: [{"hex": "00ff5c2722"}, {"hex": ""}]
select ? as bytes, hex(?) as empty_bytes
-- next
-- params: [{"date": "2024-02-29"}, {"datetime": "2024-02-29 23:59:58.123456"}, {"time": "12:34:56"}]
select ? as d, ? as dt, ? as t
-- next
-- params: [true, false]
select ? as yes, ? as no
-- next
-- params: [3]
select id, name, city from people where id = ?
-- next
-- params: ["%a%"]
select id, name from people where name like ? order by id
-- next
-- params: [2, 1]
select name from people where boss = ? or id = ? order by id
-- next
-- params: [400, "Prepared Person", "Shenzhen", {"date": "2000-05-04"}, {"decimal": "999.99"}]
insert into people (id, name, city, born, salary) values (?, ?, ?, ?, ?)
-- next
-- params: [400, "Prepared Duplicate", null, null, null]
insert into people (id, name, city, born, salary) values (?, ?, ?, ?, ?)
-- next
-- params: ["Guangzhou", 400]
update people set city = ? where id = ?
-- next
-- params: [400]
select id, name, city, born, salary from people where id = ?
-- next
-- params: [400]
delete from people where id = ?
-- next
-- params: [{"hex": "000102fffe5c"}, "blob-param"]
insert into blobs (id, b, t) values (10, ?, ?)
-- next
-- params: [10]
select b, t, length(b) from blobs where id = ?
-- next
-- params: [5, 7, null]
select ? * ? as product, ? is null as never
-- next
-- params: [1000000]
select repeat('y', ?) as long_text
-- next
select id, length(b) from blobs order by id
-- next
drop procedure raises
-- next
drop function twice
-- next
drop trigger people_ai
-- next
drop table if exists no_such_table, audit_t
-- next
show warnings
-- next
drop table part_t, ddl_like, ddl_as, ddl_renamed
-- next
select count(*) from information_schema.tables where table_schema = database()
-- next
select 'end of corpus' as done
