-- One row per fact version a load removes (sign -1) or writes (sign +1), with what the additive tables group by.
CREATE TEMP TABLE IF NOT EXISTS fact_delta (
    sale_key bigint NOT NULL, sign integer NOT NULL, date date NOT NULL, status text, quantity integer,
    total_amount numeric(12, 2), payment_method text, product_id text, category text,
    customer_id text, country text, state text,  -- the customer version the fact is bound to
    transaction_id text  -- a sales load's old facts: which of the batch's transactions are loaded already
) ON COMMIT DROP;
